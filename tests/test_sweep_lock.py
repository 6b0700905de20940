"""One sweep per workdir: the lock taken by ``Workdir.prepare``, across real processes.

The holder is a separate Python process that prepares a workdir, leaves an in-flight temporary
file (named as :func:`nstjax.atomic.atomic_path` names them) and sleeps; this process then tries
to prepare the same folder, before and after the holder is killed with SIGKILL.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nstjax.errors import NstjaxError
from nstjax.sweep.workdir import Workdir

REPO = Path(__file__).resolve().parents[1]
RECORD = {"config": {"optim": {"steps": 3}}, "inputs": {}}
IN_FLIGHT = Path("runs") / "0000" / ".image.png.k2j4x8.tmp.png"

HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from nstjax.sweep.workdir import Workdir

    workdir = Path(sys.argv[1])
    Workdir(workdir).prepare(json.loads(sys.argv[2]))
    temporary = workdir / sys.argv[3]
    temporary.parent.mkdir(parents=True, exist_ok=True)
    temporary.write_bytes(b"half an image")
    print("READY", flush=True)
    time.sleep(600)
    """
)


def refusal(workdir: Path, pid: int) -> str:
    return (
        f"--workdir {workdir}: in use by another sweep (PID {pid} on {socket.gethostname()}); "
        "wait for it or choose another --workdir"
    )


@pytest.fixture
def holder(tmp_path):
    """A process holding ``tmp_path/work`` (killed at the end if still alive)."""
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workdir), json.dumps(RECORD), str(IN_FLIGHT)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line == "READY\n", proc.communicate()
    yield workdir, proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def kill_9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_second_sweep_is_refused_naming_the_holder_and_spares_its_files(holder):
    workdir, proc = holder
    config = (workdir / "config.json").read_text()
    for record, overwrite in ((RECORD, False), ({"config": {}, "inputs": {}}, True)):
        with pytest.raises(NstjaxError) as e:
            Workdir(workdir).prepare(record, overwrite=overwrite)
        assert str(e.value) == refusal(workdir, proc.pid)
    assert (workdir / IN_FLIGHT).read_bytes() == b"half an image"  # not taken for a leftover
    assert (workdir / "config.json").read_text() == config  # --overwrite deleted nothing
    lock = json.loads((workdir / ".lock").read_text())
    assert lock == {"pid": proc.pid, "host": socket.gethostname()}


@pytest.mark.slow
def test_lock_is_released_when_the_holder_is_killed_with_sigkill(holder):
    workdir, proc = holder
    kill_9(proc)
    work = Workdir(workdir)
    try:
        assert work.prepare(RECORD) is True  # the same sweep: resumed
        assert not (workdir / IN_FLIGHT).exists()  # its writer is dead now: a leftover
        assert json.loads((workdir / ".lock").read_text())["pid"] == os.getpid()
    finally:
        work.unlock()


PREPARE = textwrap.dedent(
    """
    import json, sys
    from nstjax.errors import NstjaxError
    from nstjax.sweep.workdir import Workdir
    try:
        Workdir(sys.argv[1]).prepare(json.loads(sys.argv[2]))
    except NstjaxError as e:
        print(e)
    else:
        print("prepared")
    """
)


def prepare_elsewhere(workdir: Path) -> str:
    """Prepares ``workdir`` in a fresh process; its one-line outcome."""
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE, str(workdir), json.dumps(RECORD)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.slow
def test_held_in_this_process_until_unlocked(tmp_path):
    workdir = tmp_path / "work"
    work = Workdir(workdir)
    try:
        assert work.prepare(RECORD) is False
        assert Workdir(workdir).prepare(RECORD) is True  # the same process may prepare again
        assert prepare_elsewhere(workdir) == refusal(workdir, os.getpid())
    finally:
        work.unlock()
    assert prepare_elsewhere(workdir) == "prepared"


def test_a_folder_that_is_not_a_sweep_gets_no_lock_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NstjaxError, match="not a sweep folder"):
        Workdir(tmp_path).prepare(RECORD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_stale_lock_file_alone_is_an_empty_folder(tmp_path):
    (tmp_path / ".lock").write_text('{"pid": 1, "host": "gone"}\n')
    work = Workdir(tmp_path)
    try:
        assert work.prepare(RECORD) is False
        assert json.loads((tmp_path / "config.json").read_text()) == RECORD
    finally:
        work.unlock()


TINY_CLI = textwrap.dedent(  # the real CLI with the tiny random VGG (as in test_sweep_cli.py)
    """
    import sys
    import jax
    from nstjax import vgg
    vgg.load_params = lambda path=None: vgg.init_params(jax.random.key(0))
    from nstjax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)
CLI_CONFIG = """
from nstjax.sweep import default_config

def get_config(arg=None):
    config = default_config()
    config.data.content = [{content!r}]
    config.data.style = [{style!r}]
    config.data.size = 32
    config.loss.content_layers = ["conv2_1"]
    config.loss.style_layers = ["conv1_1", "conv2_1"]
    config.optim.steps = 2
    return config
"""


@pytest.mark.slow
def test_cli_sweep_on_a_held_workdir_exits_2_with_one_line(holder, images_dir, tmp_path):
    workdir, proc = holder
    config = tmp_path / "sweep.py"
    config.write_text(
        CLI_CONFIG.format(
            content=str(images_dir / "tubingen.jpg"), style=str(images_dir / "starry_night.jpg")
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", TINY_CLI, "sweep", "--config", config, "--workdir", workdir],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"nstjax: error: {refusal(workdir, proc.pid)}\n"
    assert (workdir / IN_FLIGHT).exists()


def test_overwrite_replaces_a_search_study_and_a_resume_keeps_it(tmp_path):
    """A search keeps its Optuna study in DIR/search: --overwrite must delete it with the other
    results (a study left behind was continued under the new settings), a resume must not."""
    study = tmp_path / "search" / "study.db"
    Workdir(tmp_path).prepare(RECORD)
    study.parent.mkdir()
    study.write_text("the trials of the first sweep")
    assert Workdir(tmp_path).prepare(RECORD) is True  # the same sweep: resumed, study kept
    assert study.read_text() == "the trials of the first sweep"
    Workdir(tmp_path).prepare({"config": {"optim": {"steps": 4}}, "inputs": {}}, overwrite=True)
    assert not (tmp_path / "search").exists()
    assert json.loads((tmp_path / "config.json").read_text())["config"]["optim"]["steps"] == 4
