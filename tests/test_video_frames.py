"""Writing a clip as a folder of frames: an ``--overwrite`` with a shorter clip leaves none of the
earlier clip's frames behind, and never removes a file it did not write."""

import json

import numpy as np
import pytest
from PIL import Image

from nstjax import image
from nstjax.video import frames


def _clip(n, value=0.5):
    return np.full((n, 4, 6, 3), value, np.float32)


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_shorter_clip_replaces_a_longer_one_and_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    frames.write_clip(out, _clip(4, 0.2))
    (out / "notes.txt").write_text("mine")
    Image.new("RGB", (6, 4)).save(out / "frame_00007.png")  # the user's own, same pattern
    frames.write_clip(out, _clip(2, 0.8))
    assert _names(out) == [
        ".nstjax-video-frames.json",
        "frame_00000.png",
        "frame_00001.png",
        "frame_00007.png",
        "notes.txt",
    ]
    assert json.loads((out / frames.WRITTEN_LIST).read_text()) == [
        "frame_00000.png",
        "frame_00001.png",
    ]
    assert (out / "notes.txt").read_text() == "mine"
    # the new frames, not the old ones: 0.8 rounds to 204 grey levels
    np.testing.assert_array_equal(np.asarray(Image.open(out / "frame_00001.png")), 204)


def test_an_interrupted_write_is_cleaned_up_by_the_next(tmp_path, monkeypatch):
    out = tmp_path / "out"
    frames.write_clip(out, _clip(2))
    save = image.save_image
    written = []

    def fail_on_the_fourth(path, *a, **k):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(path)
        save(path, *a, **k)

    monkeypatch.setattr(image, "save_image", fail_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        frames.write_clip(out, _clip(5))
    monkeypatch.setattr(image, "save_image", save)
    assert [p.name for p in written] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    # every frame written so far is recorded, so a later, shorter write removes it
    recorded = json.loads((out / frames.WRITTEN_LIST).read_text())
    assert recorded == [f"frame_{i:05d}.png" for i in range(5)]
    frames.write_clip(out, _clip(1))
    assert _names(out) == [".nstjax-video-frames.json", "frame_00000.png"]


def test_a_list_naming_other_files_removes_none_of_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside.png").write_bytes(b"keep")
    (out / "frame_1.png").write_bytes(b"keep")
    (out / "sub").mkdir()
    (out / "sub" / "frame_00003.png").write_bytes(b"keep")
    foreign = ["../outside.png", "frame_1.png", "sub/frame_00003.png", 3, "frame_00003.png/"]
    (out / frames.WRITTEN_LIST).write_text(json.dumps(foreign))
    assert frames.written_frames(out) == []
    frames.write_clip(out, _clip(1))
    assert (tmp_path / "outside.png").read_bytes() == b"keep"
    assert (out / "frame_1.png").read_bytes() == b"keep"
    assert (out / "sub" / "frame_00003.png").read_bytes() == b"keep"
    (out / frames.WRITTEN_LIST).write_text("not json")
    assert frames.written_frames(out) == []


def test_a_folder_written_as_output_reads_back_as_the_clip(tmp_path):
    clip = np.random.default_rng(0).random((3, 4, 6, 3)).astype(np.float32)
    frames.write_clip(tmp_path / "out", clip)
    back, fps = frames.read_clip(tmp_path / "out")  # the hidden list is not a frame
    np.testing.assert_allclose(back, clip, atol=0.5 / 255 + 1e-6)
    assert fps == frames.DEFAULT_FPS
