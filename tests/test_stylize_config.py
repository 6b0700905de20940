"""``nstjax stylize``'s flags as a locked config, expanded by the sweep's one expansion: explicit
flags over presets, blends and masks, problems naming flags, and what a sweep refuses."""

import json

import pytest
from conftest import cli_fails, write_random_image

from nstjax.cli import build_parser, stylize_config
from nstjax.errors import NstjaxError
from nstjax.sweep import default_config, prepare
from nstjax.sweep.expand import expand


@pytest.fixture
def files(tmp_path):
    return {
        name: write_random_image(tmp_path / f"{name}.png", size, seed)
        for seed, (name, size) in enumerate(
            [("a", (32, 24)), ("b", (24, 32)), ("s1", (40, 40)), ("s2", (40, 36)), ("m", (32, 24))]
        )
    }


def _runs(files, *flags, contents=("a",), styles=("s1",)):
    """The runs ``nstjax stylize FLAGS`` describes."""
    contents = [files[c] for c in contents]
    styles = [files[s] for s in styles]
    argv = ["stylize", "--output", "out", *flags]
    args = build_parser().parse_args(argv)
    config = stylize_config.from_flags(args, contents, styles)
    shapes = {c: (24, 32) if c == files["a"] else (32, 24) for c in contents}
    return stylize_config.runs_of(config, contents, styles, shapes), args


def test_a_given_flag_equal_to_the_default_beats_the_preset(files):
    """The paper's preset sets average pooling and no TV term (nstjax/presets/references.py);
    --pooling max and --tv-weight 1 are nstjax's defaults, and given they still win."""
    (run,), _ = _runs(files, "--preset", "paper", "--size", "24")
    assert (run.values["pooling"], run.values["tv_weight"]) == ("avg", 0.0)
    (run,), _ = _runs(
        files, "--preset", "paper", "--size", "24", "--pooling", "max", "--tv-weight", "1"
    )
    assert (run.values["pooling"], run.values["tv_weight"]) == ("max", 1.0)


def test_flags_expand_to_the_runs_of_the_same_hand_written_config(files):
    runs, _ = _runs(
        files,
        *("--size", "24", "--style-weight", "100", "--seed", "3", "--colors", "luminance"),
        contents=("a", "b"),
        styles=("s1", "s2"),
    )
    config = default_config()
    config.data.content = [files["a"], files["b"]]
    config.data.style = [files["s1"], files["s2"]]
    config.data.size = 24
    config.data.colors = "luminance"
    config.loss.style_weight = 100.0
    config.seed = 3
    config.preset = "nstjax"
    shapes = {files["a"]: (24, 32), files["b"]: (32, 24)}
    expansion, problems = expand(config, config.data.content, config.data.style, shapes)
    assert not problems
    assert [(r.content, r.style, r.values, r.label) for r in runs] == [
        (r.content, r.style, r.values, r.label) for r in expansion.runs
    ]
    assert [r.label for r in runs] == [
        "content=a, style=s1",
        "content=a, style=s2",
        "content=b, style=s1",
        "content=b, style=s2",
    ]


def test_the_config_is_locked(files):
    args = build_parser().parse_args(["stylize", "--output", "out"])
    config = stylize_config.from_flags(args, [files["a"]], [files["s1"]])
    with pytest.raises(AttributeError, match="styel_weight"):
        config.loss.styel_weight = 1.0
    with pytest.raises(TypeError):
        config.data.size = "large"


def test_a_blend_is_one_run_per_content_with_every_style(files):
    runs, _ = _runs(
        files, "--size", "24", "--style-blend", "1", "3", contents=("a", "b"), styles=("s1", "s2")
    )
    assert [r.content for r in runs] == [files["a"], files["b"]]
    run = stylize_config.api_run(runs[1], [files["a"], files["b"]], [files["s1"], files["s2"]])
    assert run.content == 1 and run.style == {0: 1.0, 1: 3.0}
    runs, _ = _runs(files, "--size", "24", "--masks", files["m"], files["m"], styles=("s1", "s2"))
    assert runs[0].blend == (1.0, 1.0) and runs[0].masks == (files["m"], files["m"])


def test_a_multiscale_schedule_replaces_size_and_steps(files):
    (run,), _ = _runs(files, "--multiscale", "16:2,24:3")
    assert stylize_config.scales(run) == [(16, 2), (24, 3)]
    (run,), _ = _runs(files, "--size", "24", "--steps", "5")
    assert stylize_config.scales(run) == [(24, 5)]


@pytest.mark.parametrize(
    ("flags", "styles", "fragments"),
    [
        (["--style-blend", "1"], ("s1", "s2"), ["--style-blend: 1 weight(s) for 2 style(s)"]),
        (["--masks", "m"], ("s1", "s2"), ["--masks: 1 mask(s) for 2 style(s)"]),
        (["--multiscale", "16:2,24:2", "--size", "24"], ("s1",), ["--multiscale replaces --size"]),
        (["--optimizer", "lbfgs_wolfe", "--average-decay", "0.5"], ("s1",), ["--average-decay"]),
        (["--upscale-detail", "1"], ("s1",), ["--upscale-detail: applies between the scales"]),
        (["--upscale-detail", "-1", "--multiscale", "16:2,24:2"], ("s1",), ["--upscale-detail"]),
    ],
)
def test_problems_name_the_flag(files, capsys, flags, styles, fragments):
    flags = [files.get(f, f) for f in flags]
    argv = ["stylize", "--content", files["a"], "--style", *(files[s] for s in styles)]
    cli_fails(capsys, [*argv, "--output", "out.png", "--size", "24", *flags], *fragments)


@pytest.mark.parametrize(
    ("path", "value"),
    [("data.style_blend", [1.0]), ("data.masks", ["m.png"]), ("optim.multiscale", [[24, 2]])],
)
def test_a_sweep_refuses_what_only_stylize_runs(files, path, value):
    config = default_config()
    config.data.content, config.data.style = [files["a"]], [files["s1"]]
    group, _, name = path.rpartition(".")
    config[group][name] = value
    with pytest.raises(NstjaxError, match=path.replace(".", r"\.") + ": blends, masks"):
        prepare(config)


@pytest.mark.parametrize("where", ["config", "axis"])
def test_a_sweep_refuses_upscale_detail(files, where):
    """The content's detail is added between scales, and a sweep runs one."""
    config = default_config()
    config.data.content, config.data.style = [files["a"]], [files["s1"]]
    if where == "config":
        config.optim.upscale_detail = 0.5
    else:
        config.sweep.axes["upscale_detail"] = [0.0, 1.0]
    with pytest.raises(NstjaxError, match=r"optim\.upscale_detail: applies between the scales"):
        prepare(config)


def test_a_bad_schedule_is_a_problem(files):
    config = default_config()
    config.optim.multiscale = [[32, 5], [16, 0]]
    _, problems = expand(config, [files["a"]], [files["s1"]], {files["a"]: (24, 32)})
    assert len(problems) == 1 and problems[0].startswith("optim.multiscale: expected")


def test_an_old_workdir_without_the_new_fields_resumes(tmp_path):
    """A config.json written before data.style_blend, data.masks and optim.multiscale existed
    describes the same sweep as the config with them at their defaults; a changed one does not."""
    from nstjax.sweep.workdir import CONFIG, Workdir

    work = Workdir(tmp_path / "w")
    record = {"config": default_config().to_dict(), "inputs": {"content": [], "style": []}}
    assert work.prepare(record) is False
    old = json.loads((tmp_path / "w" / CONFIG).read_text())
    del old["config"]["data"]["style_blend"], old["config"]["data"]["masks"]
    del old["config"]["optim"]["multiscale"], old["config"]["optim"]["upscale_detail"]
    (tmp_path / "w" / CONFIG).write_text(json.dumps(old))
    work.unlock()
    assert Workdir(tmp_path / "w").prepare(record) is True
    changed = default_config()
    changed.data.style_blend = [1.0]
    with pytest.raises(NstjaxError, match="different sweep"):
        Workdir(tmp_path / "w").prepare({**record, "config": changed.to_dict()})


def test_make_goes_through_the_expansion():
    """A preset's run and options, settings on top: given values win even at their defaults;
    gatys' schedule is its notebook's 512:500,800:200 (nstjax/presets/references.py)."""
    from nstjax import preset_run

    made = preset_run.make("paper", (48, 64))
    assert (made.options.pooling, made.run.tv_weight) == ("avg", 0.0)
    made = preset_run.make("paper", (48, 64), pooling="max", tv_weight=1.0, batch_size=2)
    assert (made.options.pooling, made.run.tv_weight, made.options.batch_size) == ("max", 1.0, 2)
    assert preset_run.make("gatys", (48, 64)).schedule == ((512, 500), (800, 200))
    assert preset_run.make("gatys", (48, 64), size=64).schedule is None
