"""Trans-VAE, the REACT baseline, end to end on a tiny SynthReact corpus: the configuration, the
objective (it learns), generation through the online loop (shapes, the long last window, seeds,
diversity from the latent), loading, the "Diffusion model" settings of ReactDiff, and the command
line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from reactlib import online, train
from reactlib.errors import UsageError
from reactlib.models import reactdiff, registry, transvae
from reactlib.suite import cli


@pytest.fixture(scope="module")
def run(cfg, corpus, tmp_path_factory):
    """Trans-VAE trained for 80 steps of 16 windows into a folder."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("transvae")
    return transvae.train_model(cfg, corpus, out=out, steps=80, batch_size=16, log_every=10)


def test_config_checks_and_profile_sizes():
    sizes = [
        sum(p.numel() for p in transvae.TransVAE(transvae.profile_config(p)).parameters())
        for p in ("ci", "lab", "full")
    ]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    with pytest.raises(UsageError, match="multiple of heads"):
        transvae.TransVAEConfig(width=30, heads=4)
    with pytest.raises(UsageError, match="no Trans-VAE size"):
        transvae.profile_config("huge")


def test_kl_closed_form():
    mu = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math_log(4.0)]])
    # KL(N(0,1)||N(0,1)) = 0; KL(N(1,1)||..) = 1/2; KL(N(0,4)||..) = (4 - 1 - ln 4) / 2
    expected = torch.tensor([0.0, 0.5 + (4 - 1 - math_log(4.0)) / 2])
    torch.testing.assert_close(transvae.kl_divergence(mu, logvar), expected)


def math_log(x: float) -> float:
    return float(np.log(x))


def test_training_reduces_the_reconstruction_error(run):
    log = run.log
    assert log["reconstruction"].iloc[-1] < 0.8 * log["reconstruction"].iloc[0]
    assert np.isfinite(log["kl"]).all()
    assert run.identity["model"] == "transvae"


def test_generation_through_the_online_loop(run, corpus):
    generator = registry.load_generator(run.out)
    model = generator.model
    split = corpus.split("test")
    pred = generator.react(online.speaker_inputs(split, [0, 1, 2]), m=3)
    assert pred.shape == (3, 3, split.frames, 58) and np.isfinite(pred).all()
    # 250 frames: the last window (26 frames) absorbs the remainder and is decoded in chunks.
    speaker, audio = online.speaker_inputs(split, [0]).arrays()
    cut = online.generate(transvae.TransVAEGenerator(model), speaker[:, :250], audio[:, :250], m=2)
    assert cut.shape == (1, 2, 250, 58) and torch.isfinite(cut).all()
    assert (cut[..., 240:, :] - cut[..., 239:-1, :]).abs().max() > 0  # not a held frame
    # Different latent noise, different reactions; the same seed, the same reactions.
    assert np.abs(pred[:, 0] - pred[:, 1]).mean() > 1e-5
    again = generator.react(online.speaker_inputs(split, [2]), m=3, chunk=1)
    np.testing.assert_allclose(again[0], pred[2], atol=1e-5)


def test_a_speaker_change_late_in_the_conversation_leaves_earlier_windows(run, corpus):
    model, _ = transvae.load(run.out)
    split = corpus.split("test")
    speaker, audio = online.speaker_inputs(split, [0]).arrays()
    generator = transvae.TransVAEGenerator(model)
    before = online.generate(generator, speaker, audio, m=2, seed=3)
    changed = speaker.copy()
    changed[:, 100:] += 1.0
    after = online.generate(generator, changed, audio, m=2, seed=3)
    cut = online.windows(split.frames)[100 // 16][0]  # the window containing frame 100 starts here
    torch.testing.assert_close(after[..., :cut, :], before[..., :cut, :])
    assert (after[..., cut:, :] - before[..., cut:, :]).abs().max() > 1e-4


def test_checkpoints_of_other_models_are_refused(run, cfg, corpus, tmp_path):
    with pytest.raises(UsageError, match="not a ReactDiff one"):
        reactdiff.load(run.out)
    rd = reactdiff.train_model(cfg, corpus, out=tmp_path / "rd", steps=1, batch_size=2)
    with pytest.raises(UsageError, match="not a Trans-VAE one"):
        transvae.load(rd.out)


def test_unknown_and_string_settings(cfg, corpus, tmp_path):
    with pytest.raises(UsageError, match="unknown Trans-VAE setting"):
        transvae.train_model(cfg, corpus, out=tmp_path, colour="blue")
    trained = transvae.train_model(
        cfg, corpus, out=tmp_path / "s", steps="2", batch_size="4", latent="8"
    )
    assert trained.identity["net"]["latent"] == 8 and trained.step == 2


def test_diffusion_model_settings_turn_off_h_and_the_constraints(cfg):
    rec = reactdiff.recipe(cfg, **reactdiff.DIFFUSION_MODEL)
    assert rec.net.timestamp is False
    assert rec.loss.fbk_weight == 0 and rec.loss.fac_weight == 0
    plain = reactdiff.recipe(cfg)
    assert dataclasses.replace(rec.net, timestamp=True) == plain.net


def test_train_and_generate_commands(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "transvae",
                "--profile",
                "ci",
                "--data",
                str(corpus.root),
                "--out",
                str(out),
                "--set",
                "steps=2",
                "--set",
                "batch_size=4",
            ]
        )  # fmt: skip
        == 0
    )
    assert (out / train.CHECKPOINT_FILE).is_file()
    pred = tmp_path / "pred.npy"
    assert (
        cli.main(
            [
                "generate",
                "--ckpt",
                str(out),
                "--data",
                str(corpus.root),
                "--m",
                "2",
                "--items",
                "2",
                "--out",
                str(pred),
                "--quiet",
            ]
        )  # fmt: skip
        == 0
    )
    assert np.load(pred).shape[:2] == (2, 2)
    assert "Trans-VAE" in capsys.readouterr().out


def test_training_in_a_coefficient_view_and_generating_in_it(corpus, tmp_path, capsys):
    out = tmp_path / "float"
    common = ["--profile", "ci", "--data", str(corpus.root)]
    argv = ["train", "transvae", *common, "--out", str(out), "--view", "float"]
    assert cli.main([*argv, "--set", "steps=1", "--set", "batch_size=4"]) == 0
    _, identity = transvae.load(out)
    assert identity["corpus"]["view"] == "float"
    pred = tmp_path / "pred.npy"
    argv = ["generate", "--ckpt", str(out), "--data", str(corpus.root), "--m", "1"]
    assert cli.main([*argv, "--items", "1", "--out", str(pred), "--quiet"]) == 0
    assert np.load(pred).shape[:2] == (1, 1)
    wrong = ["train", "posnet", *common, "--out", str(tmp_path / "p"), "--on", str(out)]
    assert cli.main([*wrong, "--view", "pfl"]) == 2
    assert "--view goes with the generator" in capsys.readouterr().err
