"""Tests for reactlib.face.pfl on images and video files: the Haar and oracle detectors, the
astronaut
photograph moved along a known path, a rendered SynthReact video, the streaming crop and its
report, render's streaming video I/O and the ``pfl-crop`` command."""

from __future__ import annotations

import gc
import json
import re

import numpy as np
import pytest
from skimage import data as skdata

from reactlib.data import synth
from reactlib.errors import DataError
from reactlib.face import coeffs, detect, footage, pfl, render, video
from reactlib.face.coeffs import TRANSLATION
from reactlib.suite import cli

PHOTO_FRAMES = 40
SIZE = 64  # side of the cropped videos written here


# --- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def haar() -> detect.HaarDetector:
    return detect.HaarDetector()


@pytest.fixture(scope="session")
def photo() -> footage.PhotoVideo:
    return footage.photo_video(PHOTO_FRAMES)


@pytest.fixture(scope="session")
def photo_haar(photo, haar) -> detect.Detections:
    return detect.detect_video(photo.frames, haar)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """A folder holding the test videos (shared; tests write their outputs elsewhere)."""
    return tmp_path_factory.mktemp("pfl_videos")


@pytest.fixture(scope="session")
def photo_mp4(photo, videos):
    return video.write_video(videos / "photo.mp4", photo.frames, fps=25)


def gradient(frames: int = 20, size=(120, 160)) -> np.ndarray:
    """Faceless frames: a horizontal grey ramp that brightens over time."""
    h, w = size
    ramp = np.linspace(30, 200, w)[None, None, :, None] + np.arange(frames)[:, None, None, None]
    return np.broadcast_to(ramp, (frames, h, w, 3)).astype(np.uint8)


@pytest.fixture(scope="session")
def gradient_mp4(videos):
    return video.write_video(videos / "gradient.mp4", gradient(), fps=10)


@pytest.fixture(scope="session")
def corpus_video(tmp_path_factory):
    """The first rendered video of a tiny SynthReact corpus (51 frames at 256 px)."""
    spec = synth.Spec(sessions=3, listeners=1, frames=50, videos=1)
    root = synth.generate(spec, tmp_path_factory.mktemp("synth") / "corpus")
    found = sorted((root / "Video_files").rglob("*.mp4"))
    assert len(found) == 2  # the first session's speaker and listener
    return found[0]


def read_report(path) -> dict:
    return json.loads(path.read_text())


# --- Haar --------------------------------------------------------------------------------------


def test_haar_finds_the_astronaut(haar):
    boxes = haar.detect(skdata.astronaut())
    assert boxes.shape == (1, 4)
    want = detect.from_corner([177, 66, 95, 95])[0]
    np.testing.assert_allclose(want, footage.ASTRONAUT_FACE)
    np.testing.assert_allclose(boxes[0, :2], want[:2], atol=3)
    np.testing.assert_allclose(boxes[0, 2:], want[2:], rtol=0.1)


def test_haar_default_settings():
    assert detect.HaarDetector().settings() == {
        "cascade": "haarcascade_frontalface_default.xml",
        "scale_factor": 1.1,
        "min_neighbors": 6,
        "min_size": 60,
    }
    assert detect.HaarDetector(1.2, 3, 40).settings()["min_size"] == 40
    assert detect.detector("haar", min_neighbors=2).settings()["min_neighbors"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale_factor": 1.0},
        {"scale_factor": 0.9},
        {"scale_factor": float("nan")},
        {"min_neighbors": -1},
        {"min_size": 0},
    ],
)
def test_haar_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        detect.HaarDetector(**kwargs)


def test_haar_unknown_cascade():
    with pytest.raises(RuntimeError, match="no_such_cascade.xml"):
        detect.HaarDetector(cascade="no_such_cascade.xml")


def test_haar_on_a_blank_frame_and_bad_frames(haar):
    assert haar.detect(np.full((240, 320, 3), 128, np.uint8)).shape == (0, 4)
    with pytest.raises(ValueError, match="uint8"):
        haar.detect(np.zeros((240, 320, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        haar.detect(np.zeros((240, 320), np.uint8))


def test_unknown_detector_names():
    with pytest.raises(ValueError, match="unknown detector 'dlib'; valid: haar, oracle"):
        detect.detector("dlib")
    with pytest.raises(ValueError, match="needs boxes=; for a SynthReact video use"):
        detect.detector("oracle")
    assert detect.detector("oracle", boxes=np.ones((2, 4))).settings()["frames"] == 2


# --- The photograph ----------------------------------------------------------------------------


def test_photo_frame_places_the_face():
    bg = np.full((300, 400, 3), 7, np.uint8)
    frame, box = footage.photo_frame((200.0, 150.0), 0.9, 0.0, frame_size=(300, 400), background=bg)
    assert frame.shape == (300, 400, 3) and frame.dtype == np.uint8
    np.testing.assert_allclose(box, [200, 150, 95 * 0.9, 95 * 0.9])
    # the astronaut's face centre, scaled about itself, lands on (200, 150) ...
    src = skdata.astronaut()[113, 224].astype(int)
    assert np.abs(frame[150, 200].astype(int) - src).max() <= 10
    # ... and far from the head only the background shows
    assert (frame[:20, :20] == 7).all() and (frame[-20:, -20:] == 7).all()


def test_photo_video_truth(photo):
    centres, scales, rolls = footage.photo_path(PHOTO_FRAMES)
    assert photo.frames.shape == (PHOTO_FRAMES, 360, 480, 3)
    np.testing.assert_allclose(photo.boxes[:, :2], centres)
    np.testing.assert_allclose(photo.boxes[:, 2], 95.0 * scales)
    np.testing.assert_array_equal(photo.boxes[:, 2], photo.boxes[:, 3])
    np.testing.assert_allclose(photo.roll, rolls)


def test_haar_tracks_the_photograph(photo, photo_haar):
    summary = photo_haar.summary()
    nan_rows = int(np.isnan(photo_haar.boxes).any(axis=1).sum())
    assert summary["missed"] == nan_rows == len(summary["miss_frames"])
    assert summary["found"] + summary["missed"] == PHOTO_FRAMES
    assert summary["missed"] <= PHOTO_FRAMES // 10
    found = photo_haar.found
    error = np.abs(photo_haar.boxes[found, :2] - photo.boxes[found, :2])
    assert np.median(error) < 8.0


def test_analytic_retention_on_the_photograph_with_haar(photo, photo_haar):
    """The windows Haar's boxes place on the photograph, judged by mapping the true box through
    them (no pixels): the floating ones follow the face, the PFL one is fixed."""
    floating = pfl.analytic_retention(photo.boxes, pfl.windows_for(photo_haar, "float"))
    fixed = pfl.analytic_retention(photo.boxes, pfl.windows_for(photo_haar, "pfl"))
    assert floating["translation"] < 0.2
    assert fixed["translation"] > 0.98
    assert fixed["scale"] > 0.98 and floating["scale"] < 0.2
    assert fixed["inside"] == 1.0  # the default path keeps the padded span within omega


# --- Closed-loop retention: the face found again in the crop's pixels ---------------------------

CROP = 256  # closed-loop crops keep the paper's size, so Haar's 60 px minSize sees the face


@pytest.fixture(scope="session")
def photo_crops(photo, photo_haar) -> dict:
    """The photo video cut by the windows Haar's boxes place: floating, PFL, and PFL capped at
    omega 120, less than the face's path (+-50 px) plus its size (76-114 px)."""
    windows = {
        "float": pfl.windows_for(photo_haar, "float"),
        "pfl": pfl.windows_for(photo_haar, "pfl"),
        "capped": pfl.windows_for(photo_haar, "pfl", omega=120),
    }
    return {k: (w, pfl.crop_array(photo.frames, w, CROP)) for k, w in windows.items()}


def test_closed_loop_pfl_keeps_the_photographs_path_and_float_loses_it(photo, photo_crops, haar):
    seen = {k: pfl.retention(c, photo.boxes, haar) for k, (_, c) in photo_crops.items()}
    assert seen["pfl"]["found"] >= 0.95
    assert seen["pfl"]["translation"] > 0.98
    assert seen["float"]["found"] >= 0.9
    assert seen["float"]["translation"] < 0.2
    analytic = pfl.analytic_retention(photo.boxes, photo_crops["float"][0], CROP)
    assert analytic["translation"] < 0.2  # the analytic view agrees on the floating crop
    # the face in the PFL crop is the size it is in the frame, scaled by 256 / window side
    side = photo_crops["pfl"][0][0, 2]
    assert seen["pfl"]["face_pixels"] == pytest.approx(
        np.median(photo.boxes[:, 2]) * CROP / side, rel=0.15
    )


def test_closed_loop_drops_when_the_window_cuts_the_face(photo, photo_crops, haar):
    """Omega 120 cannot hold a face that moves +-50 px: Haar loses the cut faces in the crop,
    while the analytic R^2 of that fixed window is still 1."""
    windows, crops = photo_crops["capped"]
    assert pfl.pfl_window(detect.detect_video(photo.frames, haar), omega=120).capped
    analytic = pfl.analytic_retention(photo.boxes, windows, CROP)
    assert analytic["translation"] == pytest.approx(1.0, abs=1e-9)
    assert analytic["inside"] < 1.0
    capped = pfl.retention(crops, photo.boxes, haar, windows=windows)
    full = pfl.retention(photo_crops["pfl"][1], photo.boxes, haar, windows=photo_crops["pfl"][0])
    assert capped["found"] < 0.6 <= full["found"] - 0.3
    assert full["coverage"] == 1.0 and full["retained"] > 0.98
    assert capped["coverage"] < 0.95 and not capped["retained"] > full["retained"] - 0.05


def test_analytic_is_one_for_a_wrong_window_and_closed_loop_is_not(photo, haar):
    """A fixed window placed where the face seldom is: mapping the true centre through it is
    affine, so the analytic R^2 is 1; the crop's pixels show almost no face."""
    wrong = np.tile([100.0, 90.0, 150.0, 150.0], (PHOTO_FRAMES, 1))
    analytic = pfl.analytic_retention(photo.boxes, wrong, CROP)
    assert analytic["translation"] == pytest.approx(1.0, abs=1e-9)
    assert analytic["scale"] == pytest.approx(1.0, abs=1e-9)
    seen = pfl.retention(pfl.crop_frames(photo.frames, wrong, CROP), photo.boxes, haar)
    assert seen["found"] < 0.2
    assert not seen["translation"] > 0.9  # NaN (too few faces) or low


def test_closed_loop_through_the_cropped_files(photo, photo_mp4, haar, tmp_path):
    """The loop through files: crop_video writes the crop, the measure reads it back."""
    seen = {}
    for mode in ("pfl", "float"):
        out = tmp_path / f"{mode}.mp4"
        pfl.crop_video(photo_mp4, out, mode, haar, CROP)
        seen[mode] = pfl.retention(video.iter_video(out), photo.boxes, haar)
    assert seen["pfl"]["found"] >= 0.95 and seen["pfl"]["translation"] > 0.98
    assert seen["float"]["translation"] < 0.2
    assert seen["pfl"]["boxes"].shape == (PHOTO_FRAMES, 4)


def synth_identity(path) -> render.Identity:
    """The identity a SynthReact video was rendered with, from its corpus file."""
    from reactlib import data

    root = next(p for p in path.parents if (p / data.CORPUS_FILE).is_file())
    meta = data.read_corpus_meta(root)
    return render.Identity.random(meta["people"][path.parent.name]["appearance_seed"])


def test_closed_loop_on_a_rendered_synthreact_person(corpus_video, tmp_path):
    """A SynthReact person rendered along a known path with real sway (the corpus clip itself
    moves only a few pixels in 51 frames), written, cropped and read back as files; the face is
    found in the crops by its skin colour alone."""
    identity = synth_identity(corpus_video)
    renderer = render.FaceRenderer(synth.VIDEO_SIZE, identity=identity)
    x = synth_like_clip(60)
    truth = detect.OracleDetector.from_renderer(renderer, x).boxes
    src = video.write_video(tmp_path / "clip.mp4", renderer.render(x), fps=25)
    skin = detect.SkinDetector.for_identity(identity)
    seen = {}
    for mode in ("pfl", "float"):
        out = tmp_path / f"{mode}.mp4"
        pfl.crop_video(src, out, mode, detect.OracleDetector(truth), CROP)
        seen[mode] = pfl.retention(video.iter_video(out), truth, skin)
    assert seen["pfl"]["found"] == 1.0 and seen["float"]["found"] == 1.0
    assert seen["pfl"]["translation"] > 0.95
    # Not ~0 as on the photograph: a head off the camera's axis is seen turned by about
    # atan(tx / tz), and the skin region (ears, neck) shifts inside the floating window with that
    # apparent turn, so some of the sway reaches the floating crop's pixels as rotation.
    assert seen["float"]["translation"] < 0.5
    assert seen["pfl"]["translation"] - seen["float"]["translation"] > 0.5


def test_skin_detector_on_a_synthreact_video(corpus_video):
    """On the corpus's own video: a face in every frame, where the oracle says it is."""
    oracle = synth.oracle_detector(corpus_video)
    skin = detect.SkinDetector.for_identity(synth_identity(corpus_video))
    det = detect.detect_video(video.iter_video(corpus_video), skin)
    assert det.found.all()
    truth = oracle.boxes
    assert (np.abs(det.boxes[:, 0] - truth[:, 0]) < 0.15 * truth[:, 2]).all()
    ratio = det.boxes[:, 2] / truth[:, 2]
    assert ratio.min() > 0.7 and ratio.max() < 1.5


def test_skin_detector_on_rendered_identities():
    """Several skin tones, rendered frames: the box centre sits on the face, never on the
    background, the hair or the shirt."""
    x = synth_like_clip(12)
    for seed in range(6):
        identity = render.Identity.random(seed)
        r = render.FaceRenderer(256, identity=identity)
        truth = detect.OracleDetector.from_renderer(r, x).boxes
        det = detect.detect_video(r.render(x), detect.SkinDetector.for_identity(identity))
        assert det.found.all(), seed
        error = np.abs(det.boxes[:, 0] - truth[:, 0])
        assert error.max() < 0.15 * truth[:, 2].min(), seed
        # vertically the region can take in the neck below the chin, never above the brows
        top = det.boxes[:, 1] - det.boxes[:, 3] / 2
        assert (top >= truth[:, 1] - truth[:, 3] / 2 - 2).all(), seed


# --- Oracle --------------------------------------------------------------------------------------


def test_oracle_misses_boxes_outside_the_frame():
    boxes = [[20, 20, 10, 10], [-10, 20, 10, 10], [-5.4, 20, 10, 10], [30, 45, 10, 10]]
    oracle = detect.OracleDetector(boxes)
    frame = np.zeros((40, 60, 3), np.uint8)
    np.testing.assert_array_equal(oracle.detect(frame, 0), [[20, 20, 10, 10]])
    assert oracle.detect(frame, 1).shape == (0, 4)  # right edge at -5
    assert oracle.detect(frame, 2).shape == (1, 4)  # right edge at -0.4: one pixel column seen
    assert oracle.detect(frame, 3).shape == (0, 4)  # top edge 40 below the last row
    with pytest.raises(ValueError, match="4 frames"):
        oracle.detect(frame, 4)
    assert oracle.settings() == {"source": "boxes", "frames": 4}


@pytest.mark.parametrize(
    "boxes",
    [np.zeros((0, 4)), np.ones(4), np.ones((3, 3)), [[1, 1, 0, 5]], [[np.nan, 1, 2, 2]]],
)
def test_oracle_refuses_bad_boxes(boxes):
    with pytest.raises(ValueError, match="oracle boxes"):
        detect.OracleDetector(boxes)


def synth_like_clip(frames: int = 40) -> np.ndarray:
    s = np.linspace(0, 2 * np.pi, frames)
    x = coeffs.neutral(frames).astype(np.float64)
    x[:, TRANSLATION] = np.column_stack(
        [0.08 * np.sin(s), 0.03 * np.sin(2 * s), 1.85 + 0.15 * np.cos(s)]
    )
    x[:, coeffs.index("yaw")] = 0.2 * np.sin(3 * s)
    return x


def test_analytic_retention_on_rendered_frames_with_the_oracle():
    r = render.FaceRenderer(128)
    x = synth_like_clip()
    oracle = detect.OracleDetector.from_renderer(r, x)
    assert oracle.source == "renderer"
    det = detect.detect_video(r.render(x), oracle)
    assert det.summary()["found"] == len(x)
    floating = pfl.analytic_retention(oracle.boxes, pfl.windows_for(det, "float"))
    fixed = pfl.analytic_retention(oracle.boxes, pfl.windows_for(det, "pfl"))
    assert abs(floating["translation"]) < 0.05
    assert fixed["translation"] > 0.999


def test_oracle_box_is_centred_on_a_symmetric_face():
    """A frontal face at tx = ty = 0 is mirror-symmetric about the image's centre column."""
    r = render.FaceRenderer(128)
    x = coeffs.neutral().astype(np.float64)
    corner = r.face_box(x)
    assert corner[0] + corner[2] / 2 == pytest.approx(63.5, abs=1e-6)  # the renderer agrees


def test_oracle_centre_is_the_face_box_centre():
    r = render.FaceRenderer(128)
    oracle = detect.OracleDetector.from_renderer(r, coeffs.neutral().astype(np.float64))
    assert oracle.boxes[0, 0] == pytest.approx(63.5, abs=0.01)


def test_oracle_for_a_synthreact_video(corpus_video):
    oracle = synth.oracle_detector(corpus_video)
    assert oracle.boxes.shape == (51, 4)
    assert oracle.settings()["source"].startswith("SynthReact SynthReact/session_0000/")
    det = detect.detect_video(video.iter_video(corpus_video), oracle)
    assert det.frame_size == (synth.VIDEO_SIZE, synth.VIDEO_SIZE)
    assert det.summary()["found"] == 51
    floating = pfl.analytic_retention(oracle.boxes, pfl.windows_for(det, "float"))
    fixed = pfl.analytic_retention(oracle.boxes, pfl.windows_for(det, "pfl"))
    assert abs(floating["translation"]) < 0.05
    assert fixed["translation"] > 0.999


def test_oracle_for_a_video_outside_a_corpus(gradient_mp4):
    with pytest.raises(ValueError, match="--boxes"):
        synth.oracle_detector(gradient_mp4)
    with pytest.raises(ValueError, match="not a video inside a SynthReact corpus"):
        synth.oracle_detector(gradient_mp4)
    with pytest.raises(ValueError, match="oracle_detector"):  # the detector factory points there
        detect.detector("oracle", video=gradient_mp4)


# --- crop_video ----------------------------------------------------------------------------------


def test_crop_video_pfl_with_haar(photo_mp4, tmp_path):
    out, rep_path = tmp_path / "pfl.mp4", tmp_path / "pfl.json"
    calls = []

    def bar(it):
        calls.append(1)
        return it

    rep = pfl.crop_video(photo_mp4, out, "pfl", "haar", SIZE, report=rep_path, progress=bar)
    assert len(calls) == 2  # one streaming pass to detect, one to crop and encode
    clip = video.read_video(out)
    assert clip.shape == (PHOTO_FRAMES, SIZE, SIZE, 3)
    assert clip.std() > 10  # a picture, not a blank
    saved = read_report(rep_path)
    assert saved == json.loads(json.dumps(rep.to_dict()))
    assert saved["source"] == str(photo_mp4) and saved["output"] == str(out)
    assert saved["mode"] == "pfl" and saved["size"] == SIZE
    assert saved["frames"] == PHOTO_FRAMES and saved["frame_size"] == [360, 480]
    assert saved["fps"] == pytest.approx(25.0)
    assert saved["detector"]["name"] == "haar" and saved["detector"]["min_size"] == 60
    window = saved["window"]
    assert set(window) >= {"x", "y", "w", "h", "span", "capped", "shifted", "shrunk"}
    assert window["w"] == window["h"] and not window["capped"]
    assert abs(window["x"] - 239.5) < 15 and abs(window["y"] - 179.5) < 15
    assert len(saved["per_frame"]) == PHOTO_FRAMES
    found = [f for f in saved["per_frame"] if f["box"] is not None]
    assert len(found) == saved["detections"]["found"] >= PHOTO_FRAMES - 4
    assert set(saved["seconds"]) == {"detect", "crop_and_encode", "total", "frames_per_second"}
    assert saved["seconds"]["frames_per_second"] > 0
    assert saved["windows_outside_frame"] == 0 and saved["faces_outside_window"] == 0


def test_crop_video_float_with_the_truth(photo, photo_mp4, tmp_path):
    out = tmp_path / "float.mp4"
    oracle = detect.OracleDetector(photo.boxes)
    rep = pfl.crop_video(photo_mp4, out, "float", oracle, SIZE, margin=0.25)
    assert video.read_video(out).shape == (PHOTO_FRAMES, SIZE, SIZE, 3)
    assert rep.window["side_min"] == pytest.approx(photo.boxes[:, 2].min() * 1.5)
    assert rep.window["side_max"] == pytest.approx(photo.boxes[:, 2].max() * 1.5)
    assert rep.window["margin"] == 0.25 and rep.detector["name"] == "oracle"
    assert rep.detections["missed"] == 0


def test_crop_video_without_output_only_reports(photo, photo_mp4, tmp_path):
    rep = pfl.crop_video(photo_mp4, None, "pfl", detect.OracleDetector(photo.boxes))
    assert rep.output is None and rep.frames == PHOTO_FRAMES
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 20])
def test_crop_video_refuses_a_broken_file(content, tmp_path):
    src = tmp_path / "broken.mp4"
    src.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(src))):
        pfl.crop_video(src, tmp_path / "out.mp4", det=detect.OracleDetector(np.ones((3, 4))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_crop_video_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        pfl.crop_video(tmp_path / "nowhere.mp4", tmp_path / "out.mp4", det="haar")


def test_crop_video_bad_options(photo_mp4, tmp_path):
    with pytest.raises(ValueError, match="unknown crop mode"):
        pfl.crop_video(photo_mp4, tmp_path / "o.mp4", mode="zoom")
    with pytest.raises(ValueError, match="size"):
        pfl.crop_video(photo_mp4, tmp_path / "o.mp4", size=4)
    with pytest.raises(ValueError, match="size"):
        pfl.crop_video(photo_mp4, tmp_path / "o.mp4", size=64.0)
    assert list(tmp_path.iterdir()) == []


def test_crop_video_without_a_face(gradient_mp4, tmp_path):
    out, rep_path = tmp_path / "out.mp4", tmp_path / "report.json"
    with pytest.raises(pfl.NoFaceError, match=re.escape(str(gradient_mp4))):
        pfl.crop_video(gradient_mp4, out, "pfl", "haar", SIZE, report=rep_path)
    assert not out.exists()
    saved = read_report(rep_path)
    assert saved["frames"] == 20
    assert saved["detections"]["missed"] == saved["frames"] == 20
    assert saved["detections"]["miss_frames"] == list(range(20))
    assert saved["window"] is None
    assert any("no face" in w for w in saved["warnings"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with pytest.raises(pfl.NoFaceError):
        pfl.crop_video(gradient_mp4, out, "float", "haar", SIZE)
    assert not out.exists()


def test_crop_video_caps_a_face_larger_than_omega(photo, photo_mp4, tmp_path):
    rep = pfl.crop_video(
        photo_mp4, tmp_path / "o.mp4", "pfl", detect.OracleDetector(photo.boxes), SIZE, omega=64
    )
    assert rep.window["capped"] is True
    assert rep.window["w"] == rep.window["h"] == 64.0
    assert rep.window["span"][0] > 64
    assert any("capped" in w and "omega" in w for w in rep.warnings)
    assert rep.faces_outside_window == PHOTO_FRAMES  # every face is larger than the window


def test_crop_video_keeps_a_border_face_inside_the_frame(gradient_mp4, tmp_path):
    n = 20
    boxes = np.column_stack([np.linspace(6, 12, n), np.full(n, 9.0), np.full((n, 2), 24.0)])
    out = tmp_path / "o.mp4"
    rep = pfl.crop_video(gradient_mp4, out, "pfl", detect.OracleDetector(boxes), 32)
    w = rep.window
    assert w["shifted"] is True and not w["capped"] and not w["shrunk"]
    assert w["w"] == w["h"] == pytest.approx(6 + 24 + 40)  # span 30 plus padding
    assert w["x"] - w["w"] / 2 == pytest.approx(-0.5) and w["y"] - w["h"] / 2 == pytest.approx(-0.5)
    assert rep.windows_outside_frame == 0
    assert any("moved inside" in m for m in rep.warnings)
    assert video.read_video(out).shape == (n, 32, 32, 3)


def test_crop_video_warns_about_a_truncated_file(photo, photo_mp4, tmp_path):
    src = tmp_path / "half.mp4"
    raw = photo_mp4.read_bytes()
    src.write_bytes(raw[: len(raw) // 2])
    rep = pfl.crop_video(src, None, "pfl", detect.OracleDetector(photo.boxes))
    assert 0 < rep.frames < PHOTO_FRAMES
    assert any("truncated" in w and str(PHOTO_FRAMES) in w for w in rep.warnings)


@pytest.mark.parametrize("change", [-1, +1])
def test_crop_video_refuses_a_second_decode_of_another_length(
    change, photo, photo_mp4, tmp_path, monkeypatch
):
    """The two streaming passes must see the same frames: one frame fewer or more the second
    time would pair every later frame with another frame's window."""
    real = video.iter_video
    calls = []

    def unsteady(path):
        calls.append(path)
        frames = list(real(path))
        if len(calls) == 2:
            frames = frames[:-1] if change < 0 else [*frames, frames[-1]]
        yield from frames

    monkeypatch.setattr(video, "iter_video", unsteady)
    out = tmp_path / "out.mp4"
    with pytest.raises(DataError, match="second decode") as err:
        pfl.crop_video(photo_mp4, out, "pfl", detect.OracleDetector(photo.boxes))
    assert str(photo_mp4) in str(err.value) and str(PHOTO_FRAMES) in str(err.value)
    assert not out.exists()


def test_crop_frames_needs_one_window_per_frame():
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    windows = np.tile([3.5, 3.5, 8.0, 8.0], (3, 1))
    assert len(list(pfl.crop_frames(frames, windows, 8))) == 3
    with pytest.raises(DataError, match="only 2 frames"):
        list(pfl.crop_frames(frames[:2], windows, 8))
    with pytest.raises(DataError, match="more frames than the 2 windows"):
        list(pfl.crop_frames(frames, windows[:2], 8))


def test_crop_video_of_a_synthreact_video_finds_its_oracle(corpus_video, tmp_path):
    oracle = synth.oracle_detector(corpus_video)
    rep = pfl.crop_video(corpus_video, tmp_path / "o.mp4", "float", oracle, 32)
    assert rep.detector["name"] == "oracle" and rep.detector["frames"] == 51
    assert rep.detections["found"] == 51
    assert video.video_info(tmp_path / "o.mp4")["size"] == (32, 32)


# --- render's streaming I/O ----------------------------------------------------------------------


def test_iter_video_yields_the_frames_of_read_video(photo_mp4):
    it = video.iter_video(photo_mp4)
    first = next(it)
    assert first.shape == (360, 480, 3) and first.dtype == np.uint8
    streamed = np.stack([first, *it])
    np.testing.assert_array_equal(streamed, video.read_video(photo_mp4))


def test_iter_video_over_a_png_folder(tmp_path):
    import cv2

    frames = gradient(3, (16, 24))
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(np.stack(list(video.iter_video(tmp_path))), frames)
    assert video.video_info(tmp_path)["size"] == (16, 24)


def test_video_info(photo_mp4, gradient_mp4):
    info = video.video_info(photo_mp4)
    assert info["fps"] == pytest.approx(25.0) and tuple(info["size"]) == (360, 480)
    info = video.video_info(gradient_mp4)
    assert info["fps"] == pytest.approx(10.0) and tuple(info["size"]) == (120, 160)


def test_video_info_names_a_broken_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        video.video_info(bad)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        next(video.iter_video(bad))
    with pytest.raises(FileNotFoundError):
        video.video_info(tmp_path / "missing.mp4")


def test_write_video_streams_a_generator(tmp_path):
    frames = gradient(6, (30, 42))  # even sizes: the file keeps them exactly

    def gen():
        yield from frames

    path = video.write_video(tmp_path / "g.mp4", gen(), fps=12)
    assert path == tmp_path / "g.mp4"
    back = video.read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 3
    assert video.video_info(path)["fps"] == pytest.approx(12.0)


def test_write_video_refuses_a_frame_of_another_shape(tmp_path):
    def gen():
        yield np.zeros((32, 32, 3), np.uint8)
        yield np.zeros((32, 34, 3), np.uint8)

    with pytest.raises(ValueError, match=r"frame 1 is \(32, 34, 3\)"):
        video.write_video(tmp_path / "g.mp4", gen())
    assert not (tmp_path / "g.mp4").exists()


def test_write_video_leaves_no_file_when_a_frame_is_refused(tmp_path):
    def gen():
        yield np.zeros((32, 32, 3), np.uint8)
        yield np.zeros((32, 32, 3), np.float32)

    try:
        video.write_video(tmp_path / "g.mp4", gen())
    except ValueError:
        pass
    else:
        pytest.fail("the float frame was accepted")
    gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_write_video_refuses_an_empty_iterable(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "e.mp4", iter([]))
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "e.mp4", [])
    gc.collect()
    assert list(tmp_path.iterdir()) == []


# --- pfl-crop ------------------------------------------------------------------------------------


@pytest.fixture
def truth_npy(photo, tmp_path):
    path = tmp_path / "boxes.npy"
    np.save(path, photo.boxes)
    return path


def test_cli_crops_with_oracle_boxes(photo_mp4, truth_npy, tmp_path, capsys):
    out, rep = tmp_path / "out.mp4", tmp_path / "report.json"
    args = ["pfl-crop", str(photo_mp4), str(out), "--detector", "oracle", "--boxes", str(truth_npy)]
    code = cli.main([*args, "--report", str(rep), "--size", str(SIZE), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert video.read_video(out).shape == (PHOTO_FRAMES, SIZE, SIZE, 3)
    saved = read_report(rep)
    assert saved["detections"]["found"] == PHOTO_FRAMES
    assert saved["detector"]["source"] == str(truth_npy)
    assert re.search(r"\d+\.\d frames/s \(\d+\.\d\d s\)", printed), printed
    assert f"faces found in {PHOTO_FRAMES}/{PHOTO_FRAMES} frames (0 missed)" in printed
    assert "pfl crop of" in printed and f"report: {rep}" in printed


def test_cli_float_crop_of_a_synthreact_video(corpus_video, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = cli.main(
        ["pfl-crop", str(corpus_video), str(out), "--detector", "oracle", "--mode", "float"]
        + ["--size", "32", "--quiet"]
    )
    assert code == 0
    assert video.read_video(out).shape == (51, 32, 32, 3)
    assert "frames/s" in capsys.readouterr().out


def test_cli_without_a_face_exits_1(gradient_mp4, tmp_path, capsys):
    boxes = tmp_path / "away.npy"
    np.save(boxes, np.tile([-100.0, -100.0, 20.0, 20.0], (20, 1)))  # wholly outside the frame
    out, rep = tmp_path / "out.mp4", tmp_path / "report.json"
    code = cli.main(
        ["pfl-crop", str(gradient_mp4), str(out), "--detector", "oracle", "--boxes", str(boxes)]
        + ["--report", str(rep), "--quiet"]
    )
    assert code == 1
    assert not out.exists() and rep.exists()
    assert read_report(rep)["detections"]["missed"] == 20
    err = capsys.readouterr().err
    assert "error:" in err and "no face" in err and f"report: {rep}" in err


@pytest.mark.parametrize("detector", ["haar", "oracle"])
def test_cli_corrupt_input_exits_1(detector, truth_npy, tmp_path, capsys):
    src = tmp_path / "corrupt.mp4"
    src.write_text("garbage " * 100)
    out = tmp_path / "out.mp4"
    extra = ["--detector", "oracle", "--boxes", str(truth_npy)] if detector == "oracle" else []
    assert cli.main(["pfl-crop", str(src), str(out), *extra, "--quiet"]) == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(src) in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--omega", "1", "2", "3"], "--omega takes one value or two"),
        (["--omega", "0"], "omega"),
        (["--boxes", "BOXES"], "--boxes goes with --detector oracle"),
        (["--size", "4"], "--size must be at least 8"),
        (["--scale-factor", "1.0"], "scale_factor"),
        (["--padding", "-5"], "--padding >= 0"),
        (["--mode", "float", "--margin", "-1"], "--margin >= 0"),
        (["--mode", "float", "--smooth", "1"], "0 <= --smooth < 1"),
        (["--detector", "oracle"], "--boxes"),  # not a SynthReact video, and no boxes
    ],
)
def test_cli_usage_errors_exit_2(extra, message, gradient_mp4, truth_npy, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    extra = [str(truth_npy) if a == "BOXES" else a for a in extra]
    assert cli.main(["pfl-crop", str(gradient_mp4), str(out), *extra, "--quiet"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_cli_unusable_boxes_file_exits_1_naming_it(gradient_mp4, tmp_path, capsys):
    boxes = tmp_path / "boxes.npy"
    boxes.write_text("not an array")
    out = tmp_path / "out.mp4"
    args = ["pfl-crop", str(gradient_mp4), str(out), "--detector", "oracle", "--boxes", str(boxes)]
    assert cli.main([*args, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(boxes) in err and not out.exists()


def test_cli_output_folder_must_exist(gradient_mp4, tmp_path, capsys):
    out = tmp_path / "missing" / "out.mp4"
    assert cli.main(["pfl-crop", str(gradient_mp4), str(out), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_argparse_rejects_an_unknown_mode(gradient_mp4, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["pfl-crop", str(gradient_mp4), str(tmp_path / "o.mp4"), "--mode", "zoom"])
    assert stop.value.code == 2
    assert "zoom" in capsys.readouterr().err
