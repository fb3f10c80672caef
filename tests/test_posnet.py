"""PosNet (network, losses, training) and the seam fixes, as post-processors of the online loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactlib import online
from reactlib.errors import UsageError
from reactlib.face import coeffs
from reactlib.metrics.realism import smoothness
from reactlib.models import baselines, losses, posnet

W = 16


def seamed(n: int = 6, frames: int = 160, jump: float = 0.3, seed: int = 0) -> np.ndarray:
    """Reactions ``(n, 1, frames, 58)``: smooth random expressions and poses, plus a random pose
    offset that changes at every window seam (a generator with bad seams)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, coeffs.NUM_COEFFS))
    x = 0.5 * np.sin(2 * np.pi * t / 90 + phase)
    offsets = rng.normal(0, jump, (n, frames // W + 1, 6))
    x[..., coeffs.POSE] += np.repeat(offsets, W, axis=1)[:, :frames]
    return x[:, None].astype(np.float32)


def seam_and_step(reactions: np.ndarray) -> tuple[float, float]:
    """Mean absolute pose change across seams and within windows."""
    figures = smoothness(reactions, W, dims=coeffs.POSE)
    return figures["seam_jump"], figures["velocity"]


def run(reactions, fix):
    """``reactions (N, 1, T, 58)`` replayed through the online loop (the ground-truth generator)
    with the post-processor ``fix``."""
    n, m, frames, _ = reactions.shape
    assert m == 1, "one reaction per speaker: GT repeats its listener over M"
    speaker = np.zeros((n, frames, coeffs.NUM_COEFFS), dtype=np.float32)
    generator = baselines.GroundTruth(reactions[:, 0])
    return online.generate(generator, speaker, m=1, post=fix).numpy()


# --- Network --------------------------------------------------------------------------------


def test_untrained_residual_posnet_is_the_identity():
    model = posnet.PosNet(posnet.PosNetConfig(window=W, hidden=8)).eval()
    poses = torch.randn(3, 30, 6)
    assert torch.equal(model(torch.randn(3, 6), poses), poses)


def test_posnet_output_shapes_and_chunks():
    torch.manual_seed(0)
    model = posnet.PosNet(posnet.PosNetConfig(window=W, hidden=8, residual=False)).eval()
    past, poses = torch.randn(2, 6), torch.randn(2, 30, 6)
    out = model(past, poses)
    assert out.shape == (2, 30, 6)
    # The second chunk (frames 16..29) continues from the first chunk's last adjusted pose.
    first = model(past, poses[:, :W])
    assert torch.allclose(out[:, :W], first)
    assert torch.allclose(out[:, W:], model(first[:, -1], poses[:, W:]), atol=1e-6)


def test_posnet_statistics_are_checked():
    model = posnet.PosNet(posnet.PosNetConfig(hidden=4))
    with pytest.raises(UsageError):
        model.set_statistics(torch.zeros(6), torch.zeros(6))
    with pytest.raises(UsageError):
        posnet.PosNetConfig(window=0)


# --- Losses ---------------------------------------------------------------------------------


def test_losses_hand_computed():
    t = torch.arange(6, dtype=torch.float32)
    ramp = (0.5 * t)[None, :, None].expand(1, 6, 6)
    assert torch.allclose(losses.sm1_loss(ramp), torch.tensor([0.5]))
    assert torch.allclose(losses.sm2_loss(ramp), torch.tensor([0.0]))
    parabola = (t**2)[None, :, None].expand(1, 6, 6)
    assert torch.allclose(losses.sm2_loss(parabola), torch.tensor([2.0]))
    past = torch.full((1, 6), -1.0)
    assert torch.allclose(losses.connect_loss(past, ramp), torch.tensor([1.0]))


def test_printed_sm2_telescopes_to_last_step_minus_first():
    poses = torch.randn(4, W, 6)
    step = poses.diff(dim=1).abs()
    expected = (step[:, -1] - step[:, 0]).mean(-1) / (W - 2)
    assert torch.allclose(losses.sm2_printed(poses), expected, atol=1e-6)
    # Any jagged path between the same first and last steps scores the same as printed.
    jagged = poses.clone()
    jagged[:, 2:-2] += torch.randn(4, W - 4, 6)
    assert not torch.allclose(losses.sm2_loss(jagged), losses.sm2_loss(poses))


def test_posnet_loss_weights_and_parts():
    adjusted, reference, past = torch.randn(5, W, 6), torch.randn(5, W, 6), torch.randn(5, 6)
    only_fidelity = losses.PosNetLossSettings(connect=0, sm1=0, sm2=0, fidelity=1)
    total, logs = losses.posnet_loss(adjusted, reference, past, only_fidelity)
    assert torch.allclose(total, (adjusted - reference).pow(2).mean())
    assert set(logs) == {"fidelity", "connect", "sm1", "sm2"}
    with pytest.raises(UsageError):
        losses.PosNetLossSettings(sm1=-1)


# --- Seam fixes -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "cubic", "moving_average", "posnet"])
def test_fixes_leave_expressions_bit_for_bit(name):
    reactions = seamed(n=2)
    model = posnet.PosNet(posnet.PosNetConfig(window=W, hidden=8, residual=False))
    out = run(reactions, posnet.make_fix(name, model))
    assert np.array_equal(out[..., coeffs.EXPRESSION], reactions[..., coeffs.EXPRESSION])
    assert not np.array_equal(out[..., coeffs.POSE], reactions[..., coeffs.POSE])


def test_no_fix_replays_the_generator():
    reactions = seamed(n=2)
    assert np.array_equal(run(reactions, posnet.make_fix("none")), reactions)


def test_linear_blend_is_a_straight_line_from_the_last_shown_pose():
    reactions = seamed(n=1)
    out = run(reactions, posnet.Blend("linear", frames=4))
    pose = out[0, 0, :, coeffs.POSE]
    assert np.array_equal(pose[:W], reactions[0, 0, :W, coeffs.POSE])  # first window untouched
    for start in (W, 2 * W):
        a, b = pose[start - 1], pose[start + 4]
        expected = a + (b - a) * (np.arange(1, 5) / 5)[:, None]
        assert np.allclose(pose[start : start + 4], expected, atol=1e-6)
    seam, step = seam_and_step(out)
    raw_seam, _ = seam_and_step(reactions)
    assert seam < raw_seam / 2


def test_moving_average_equals_one_causal_filter_over_the_whole_sequence():
    reactions = seamed(n=2)
    out = run(reactions, posnet.MovingAverage(width=5))
    pose = reactions[..., coeffs.POSE].astype(np.float64)
    padded = np.concatenate([np.repeat(pose[..., :1, :], 4, axis=-2), pose], axis=-2)
    expected = np.stack([padded[..., t : t + 5, :].mean(-2) for t in range(pose.shape[-2])], -2)
    assert np.allclose(out[..., coeffs.POSE], expected, atol=1e-5)


def test_make_fix_refuses_bad_names_and_a_missing_model():
    with pytest.raises(UsageError, match="unknown seam fix"):
        posnet.make_fix("spline")
    with pytest.raises(UsageError, match="needs a trained PosNet"):
        posnet.make_fix("posnet")


# --- Training -------------------------------------------------------------------------------


def test_rollout_windows_refuse_bad_input():
    with pytest.raises(UsageError, match=r"\(N, M, T, 58\)"):
        posnet.RolloutWindows(np.zeros((2, 10, 58)), W)
    with pytest.raises(UsageError, match="windows after the first"):
        posnet.RolloutWindows(np.zeros((1, 1, 40, 58)), W)
    bad = np.zeros((1, 1, 64, 58))
    bad[0, 0, 3, 0] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        posnet.RolloutWindows(bad, W)


def test_rollout_batch_pairs_each_window_with_the_frame_before_it():
    reactions = seamed(n=3)
    windows = posnet.RolloutWindows(reactions, W)
    past, poses = windows.batch(8, seed=0, step=3)
    assert poses.shape == (8, posnet.UNROLL * W, 6)
    poses = poses[:, :W]
    flat = torch.from_numpy(reactions[..., coeffs.POSE]).flatten(0, 1)
    for p, x in zip(past, poses, strict=True):
        hits = [
            (s, j)
            for s in range(flat.shape[0])
            for j in range(1, flat.shape[1] // W - posnet.UNROLL + 1)
            if torch.equal(flat[s, j * W : (j + 1) * W], x)
        ]
        assert len(hits) == 1
        s, j = hits[0]
        assert torch.equal(flat[s, j * W - 1], p)


def test_trained_posnet_closes_the_seams_and_keeps_the_motion(cfg, tmp_path):
    reactions = seamed(n=32, frames=320, seed=1)
    trained = posnet.train_model(
        cfg, reactions, source="seamed", out=tmp_path / "run", steps=800, hidden=32, lr=1e-2
    )
    log = trained.log
    assert log["loss"].tail(5).mean() < log["loss"].head(5).mean()
    fresh = seamed(n=4, frames=320, seed=2)  # reactions it never saw
    out = run(fresh, posnet.PosNetFix(trained.ema))
    seam, step = seam_and_step(out)
    raw_seam, raw_step = seam_and_step(fresh)
    assert seam < 0.5 * raw_seam
    # It is no constant pose: the motion within windows is kept.
    assert step > 0.5 * raw_step
    model, ident = posnet.load(trained.out)
    assert ident["source"]["generator"] == "seamed"
    assert torch.equal(model.pose_mean, trained.ema.pose_mean)


def test_load_refuses_another_models_checkpoint(cfg, tmp_path):
    from reactlib import train

    model = torch.nn.Linear(2, 2)
    settings = train.TrainSettings(steps=1, batch_size=1)

    def objective(m, step, rank, world):
        return m(torch.ones(1, 2)).sum(), {}

    train.fit(model, objective, settings, tmp_path, identity={"model": "other"})
    with pytest.raises(UsageError, match="not a PosNet"):
        posnet.load(tmp_path)


# --- Command line ---------------------------------------------------------------------------


def test_train_posnet_on_a_generator_and_generate_with_it(corpus, tmp_path, capsys):
    from reactlib import train
    from reactlib.suite import cli

    gen, smoother = tmp_path / "transvae", tmp_path / "posnet"
    common = ["--profile", "ci", "--data", str(corpus.root)]
    assert cli.main(["train", "transvae", *common, "--out", str(gen), "--set", "steps=2"]) == 0
    argv = ["train", "posnet", *common, "--out", str(smoother), "--on", str(gen)]
    assert cli.main([*argv, "--items", "3", "--set", "steps=3", "--set", "hidden=8"]) == 0
    _, ident = posnet.load(smoother)
    assert ident["source"]["generator"] == "transvae"
    assert ident["train"]["optimizer"] == "sgd" and ident["net"]["hidden"] == 8
    outputs = {}
    for name, extra in (("raw", []), ("posnet", ["--posnet", str(smoother)]),
                        ("linear", ["--seam-fix", "linear"])):  # fmt: skip
        outputs[name] = tmp_path / f"{name}.npy"
        argv = ["generate", "--ckpt", str(gen), "--data", str(corpus.root), "--m", "2"]
        argv += ["--items", "2", "--out", str(outputs[name]), "--quiet", *extra]
        assert cli.main(argv) == 0
    raw, smoothed, linear = (np.load(outputs[k]) for k in ("raw", "posnet", "linear"))
    # The first window has no seam; later windows continue from the frame that was shown, so
    # the generator's expressions there follow its (adjusted) past.
    assert np.array_equal(smoothed[..., :W, :], raw[..., :W, :])
    assert not np.array_equal(linear[..., coeffs.POSE], raw[..., coeffs.POSE])
    assert "PosNet" in capsys.readouterr().out
    # Misuse is refused with a message, not a traceback.
    assert cli.main(["train", "posnet", *common, "--out", str(tmp_path / "x")]) == 2
    both = ["--posnet", str(smoother), "--seam-fix", "cubic"]
    bad = ["generate", "--ckpt", str(gen), "--out", str(tmp_path / "y.npy"), *both]
    assert cli.main(bad) == 2
    wrong = ["generate", "--ckpt", str(smoother), "--out", str(tmp_path / "z.npy")]
    assert cli.main(wrong) == 2
    assert (smoother / train.CHECKPOINT_FILE).is_file()


def test_train_on_generates_with_a_seed_apart_from_the_tests_and_trains(
    cfg, corpus, tmp_path, monkeypatch
):
    from reactlib import train

    monkeypatch.setenv(train.MODELS_ENV, str(tmp_path))
    asked = {}

    class Replay(online.Generator):
        """Seamed reactions, whatever the speakers: what train_on asked for is recorded."""

        name = "fake"

        def react(self, inputs, m=10, seed=0, **kwargs):
            asked.update(items=inputs.items, m=m, seed=seed)
            return seamed(n=len(inputs), frames=128, seed=seed)

    split = corpus.split("train")
    trained, reactions = posnet.train_on(cfg, Replay(), split, items=range(4), steps=3, hidden=8)
    assert asked == {"items": (0, 1, 2, 3), "m": 2, "seed": cfg.seed + 1}
    assert reactions.shape == (4, 1, 128, 58)
    assert trained.step == 3 and trained.identity["source"]["generator"] == "fake"
    again, _ = posnet.train_on(cfg, Replay(), split, items=range(4), steps=3, hidden=8)
    assert not again.trained_now  # cached by the reactions' digest
