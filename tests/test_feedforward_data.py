"""The training data pipeline (nstjax.feedforward.data): the documented order (a numpy
permutation per epoch, seeded by (seed, epoch)) and crops (offsets drawn by a generator seeded by
(seed, position, 1)), identified from the pixels; a process's rows are its rows of the same global
batch; worker processes give the same batches; a saved iterator state (also through the orbax
checkpoint) resumes with the rest of the uninterrupted stream."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from nstjax import image, resample
from nstjax.errors import NstjaxError
from nstjax.feedforward import TrainConfig, data
from nstjax.feedforward.checkpoint import Checkpoints, write_config

SHADES = 5  # content images, each one flat grey level: 40 * i / 255 identifies image i


@pytest.fixture(scope="module")
def flat_files(tmp_path_factory):
    """Five flat images of different shapes; a flat image stays exactly flat when resized."""
    folder = tmp_path_factory.mktemp("flat")
    files = []
    for i in range(SHADES):
        path = folder / f"{i}.png"
        Image.fromarray(np.full((20 + 3 * i, 28 - 2 * i, 3), 40 * i, np.uint8)).save(path)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def ramp_file(tmp_path_factory):
    """One 24x40 image whose pixels all differ, so a crop's window can be found."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("ramp") / "ramp.png"
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), np.uint8)).save(path)
    return path


def _ids(batches: np.ndarray) -> list[int]:
    """Which flat image each row is (its constant value), checking the row is flat."""
    rows = batches.reshape(-1, *batches.shape[-3:])
    assert np.all(rows == rows[:, :1, :1, :1])
    return [int(v) for v in np.rint(rows[:, 0, 0, 0] * 255 / 40)]


def _stream(files, steps, seed=0, batch_size=2, crop="center", rows=None):
    batches = data.training_batches(files, 8, batch_size, crop, seed, rows)
    return np.stack([batches[s] for s in range(steps)])


@pytest.mark.parametrize("seed", [0, 1])
def test_each_epoch_is_the_documented_permutation(flat_files, seed):
    ids = _ids(_stream(flat_files, steps=15, seed=seed))  # 30 positions: 6 epochs of 5
    epochs = [ids[e * SHADES : (e + 1) * SHADES] for e in range(6)]
    for e, epoch in enumerate(epochs):
        assert epoch == list(np.random.default_rng([seed, e]).permutation(SHADES))
    assert len({tuple(e) for e in epochs}) > 1  # a new permutation per epoch
    other = _ids(_stream(flat_files, steps=15, seed=1 - seed))
    assert other != ids


def _windows(pixels: np.ndarray, size: int) -> dict[tuple[int, int], np.ndarray]:
    """Every ``size`` square of ``pixels`` after its shorter side is resized to ``size``."""
    h, w = pixels.shape[:2]
    shape = (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
    resized = resample.resize(pixels, shape)
    return {
        (top, left): resized[top : top + size, left : left + size]
        for top in range(shape[0] - size + 1)
        for left in range(shape[1] - size + 1)
    }


def _offset(crop: np.ndarray, windows) -> tuple[int, int]:
    found = [k for k, w in windows.items() if np.array_equal(w, crop)]
    assert len(found) == 1
    return found[0]


def test_crops_are_the_documented_windows(ramp_file):
    pixels = image.load_image(ramp_file)
    windows = _windows(pixels, 8)  # shorter side 24 -> 8: the image becomes 8x13, 6 offsets
    assert len(windows) == 6
    random = _stream([ramp_file], steps=12, batch_size=1, crop="random")[:, 0]
    offsets = [_offset(c, windows) for c in random]
    expected = []
    for position in range(12):
        rng = np.random.default_rng([0, position, 1])
        expected.append((int(rng.integers(0, 1)), int(rng.integers(0, 6))))
    assert offsets == expected
    assert len(set(offsets)) > 2  # drawn anew for every position
    center = _stream([ramp_file], steps=2, batch_size=1)[:, 0]
    assert [_offset(c, windows) for c in center] == [(0, 2)] * 2  # (0 // 2, 5 // 2)
    warped = _stream([ramp_file], steps=1, batch_size=1, crop="resize")[0, 0]
    np.testing.assert_array_equal(warped, resample.resize(pixels, (8, 8)))


def test_a_process_loads_its_rows_of_the_same_global_batch(ramp_file, flat_files):
    files = [ramp_file, *flat_files]
    whole = _stream(files, steps=5, batch_size=4, crop="random")
    for rows in (range(0, 1), range(1, 3), range(3, 4)):
        share = _stream(files, steps=5, batch_size=4, crop="random", rows=rows)
        np.testing.assert_array_equal(share, whole[:, rows.start : rows.stop])


def test_resume_from_a_saved_state_gives_the_rest_of_the_stream(flat_files, tmp_path):
    batches = data.training_batches(flat_files, 8, 2, "random", 3)
    expected = [batches[s] for s in range(9)]
    feed = data.batch_iterator(batches, 0)
    for s in range(4):
        np.testing.assert_array_equal(next(feed), expected[s])
    state = {"w": np.arange(3.0)}
    history, rejected = np.zeros((4, 1, 4), np.float32), np.zeros((4, 1), bool)
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(4, state, history, rejected, data=feed)
    np.testing.assert_array_equal(next(feed), expected[4])  # the saved state stays at 4
    feed.close()
    resumed = data.batch_iterator(batches, 0)
    restored, _, _ = checkpoints.restore(4, state, data=resumed)
    checkpoints.close()
    np.testing.assert_array_equal(restored["w"], state["w"])
    for s in range(4, 9):
        np.testing.assert_array_equal(next(resumed), expected[s])
    resumed.close()


def test_a_checkpoint_without_data_state_is_refused(flat_files, tmp_path):
    checkpoints = Checkpoints(tmp_path)
    state = {"w": np.zeros(2)}
    checkpoints.save(2, state, np.zeros((2, 1, 4), np.float32), np.zeros((2, 1), bool))
    feed = data.batch_iterator(data.training_batches(flat_files, 8, 2, "random", 0), 0)
    with pytest.raises(NstjaxError, match="checkpoint 2 holds no data-loader state"):
        checkpoints.restore(2, state, data=feed)
    restored, _, _ = checkpoints.restore(2, state)  # the networks alone still load
    np.testing.assert_array_equal(restored["w"], state["w"])
    checkpoints.close()
    feed.close()


def test_resuming_with_another_worker_count_is_refused(tmp_path):
    config = TrainConfig(styles=("s.png",), content_dir="c")
    write_config(tmp_path, config)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(NstjaxError, match="different data_workers"):
        write_config(tmp_path, dataclasses.replace(config, data_workers=2))


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_and_resume(ramp_file, flat_files):
    """Two worker processes (spawned: each imports the package, seconds to minutes on a busy
    machine): the same batches as in-process loading; a state taken after 5 batches and set
    after 7 goes back to batch 5."""
    batches = data.training_batches([ramp_file, *flat_files], 8, 2, "random", 5)
    expected = [batches[s] for s in range(8)]
    feed = data.batch_iterator(batches, 2)
    for s in range(5):
        np.testing.assert_array_equal(next(feed), expected[s])
    state = feed.get_state()
    for s in range(5, 7):
        np.testing.assert_array_equal(next(feed), expected[s])
    feed.set_state(state)
    for s in range(5, 8):
        np.testing.assert_array_equal(next(feed), expected[s])
    feed.close()
