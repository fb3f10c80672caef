"""Tests for reactlib.face.video: H.264 writing and reading, PNG frame folders, inline display,
tiling.
(Streaming reads and writes over longer files are exercised in test_pfl_video.py.)"""

from __future__ import annotations

import cv2
import imageio.v2 as imageio
import numpy as np
import pytest

from reactlib.face.video import read_video, show_video, side_by_side, write_video


@pytest.mark.parametrize(("h", "w"), [(64, 64), (63, 65)])
def test_write_and_read_video_round_trip(tmp_path, h, w):
    frames = np.zeros((10, h, w, 3), dtype=np.uint8)
    frames[:, : h // 2] = (200, 40, 40)
    frames[:, h // 2 :] = (30, 60, 220)
    frames[5:, :, : w // 2] = 255
    path = write_video(tmp_path / "clip.mp4", frames, fps=25)
    assert path == tmp_path / "clip.mp4" and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temporary file left
    back = read_video(path)
    assert back.shape == (10, h + h % 2, w + w % 2, 3) and back.dtype == np.uint8
    err = np.abs(back[:, :h, :w].astype(int) - frames)
    assert np.median(err) <= 3
    with imageio.get_reader(path) as reader:
        assert "h264" in reader.get_meta_data()["codec"]


def test_write_video_rejects_bad_frames_and_leaves_no_file(tmp_path):
    for bad in (
        np.zeros((4, 8, 8, 3)),
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((0, 8, 8, 3), np.uint8),
        [[0]],
    ):
        with pytest.raises(ValueError, match="frames"):
            write_video(tmp_path / "bad.mp4", bad)
    assert list(tmp_path.iterdir()) == []


def test_write_video_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")

    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def append_data(self, frame):
            raise RuntimeError("encoder died")

    monkeypatch.setattr(imageio, "get_writer", lambda *a, **k: Broken())
    with pytest.raises(RuntimeError, match="encoder died"):
        write_video(target, np.zeros((2, 8, 8, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert target.read_bytes() == b"old"


def test_read_png_folder_in_numeric_order(tmp_path):
    for value, name in ((10, "1.png"), (20, "2.png"), (30, "10.png")):
        cv2.imwrite(str(tmp_path / name), np.full((6, 5, 3), (0, 0, value), np.uint8))  # BGR
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = read_video(tmp_path)
    assert frames.shape == (3, 6, 5, 3)
    assert frames[:, 0, 0, 0].tolist() == [10, 20, 30]  # red, once converted to RGB


def test_read_video_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="no numbered PNG"):
        read_video(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="broken.mp4"):
        read_video(tmp_path / "broken.mp4")
    (tmp_path / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="1.png"):
        read_video(tmp_path)


def test_show_video_embeds_an_mp4(tmp_path):
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    html = show_video(frames, width=200).data
    assert "<video" in html and "base64" in html and 'width="200"' in html
    path = write_video(tmp_path / "a.mp4", frames)
    assert "data:video/mp4;base64" in show_video(path).data


def test_side_by_side_tiles_and_pads():
    a = np.full((3, 20, 30, 3), 10, np.uint8)
    a[2] = 90
    b = np.full((5, 16, 10, 3), 200, np.uint8)
    out = side_by_side([a, b], gap=4)
    assert out.shape == (5, 20, 44, 3) and out.dtype == np.uint8
    assert (out[3:, :, :30] == 90).all()  # the short clip holds its last frame
    assert (out[:, :, 30:34] == 255).all()  # the gap
    assert (out[:, 16:, 34:] == 255).all()  # the shorter tile is padded below
    labelled = side_by_side([a, b], labels=["A", "B"])
    assert not np.array_equal(labelled[:, :, :30], out[:, :, :30])
    with pytest.raises(ValueError, match="labels"):
        side_by_side([a, b], labels=["A"])
    with pytest.raises(ValueError, match="at least one"):
        side_by_side([])
