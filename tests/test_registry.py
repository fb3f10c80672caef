"""The one road to every generator: reactlib.models.registry (a checkpoint or a trained run -> its
generator, a baseline by name) and the interface they all answer, reactlib.online's
``Generator.react`` over ``SpeakerInputs``; on the ci SynthReact corpus with tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactlib import online, train
from reactlib.errors import UsageError
from reactlib.models import baselines, posnet, reactdiff, registry, transvae

torch.set_num_threads(1)

TINY = dict(steps=2, batch_size=4)


@pytest.fixture(scope="module")
def split(corpus):
    return corpus.split("test")


@pytest.fixture(scope="module")
def runs(cfg, corpus, tmp_path_factory):
    """A two-step ReactDiff, diffusion model and Trans-VAE, each in its own run folder."""
    root = tmp_path_factory.mktemp("registry")
    return {
        "reactdiff": reactdiff.train_model(cfg, corpus, out=root / "rd", **TINY),
        "diffusion": reactdiff.train_model(
            cfg, corpus, out=root / "dm", **TINY, **reactdiff.DIFFUSION_MODEL
        ),
        "transvae": transvae.train_model(cfg, corpus, out=root / "tv", **TINY),
    }


def test_a_checkpoint_gives_the_generator_of_its_model(runs):
    made = {name: registry.load_generator(run.out, steps=3) for name, run in runs.items() if
            name != "transvae"}  # fmt: skip
    made["transvae"] = registry.load_generator(runs["transvae"].out / train.CHECKPOINT_FILE)
    assert isinstance(made["reactdiff"], reactdiff.ReactDiffGenerator)
    assert isinstance(made["transvae"], transvae.TransVAEGenerator)
    assert made["reactdiff"].describe() == "ReactDiff (sde, 3 steps)"
    assert made["diffusion"].describe() == "Diffusion model (sde, 3 steps)"
    assert made["transvae"].describe() == "Trans-VAE"
    for name, generator in made.items():
        assert generator.identity == runs[name].identity
        assert not generator.model.training


def test_a_checkpoint_and_its_run_generate_the_same_reactions(runs, split):
    inputs = online.speaker_inputs(split, [0, 3])
    for name, run in runs.items():
        options = {} if name == "transvae" else {"steps": 2}
        from_file = registry.load_generator(run.out, **options).react(inputs, m=2, seed=4)
        from_run = registry.load_generator(run, **options).react(inputs, m=2, seed=4)
        np.testing.assert_array_equal(from_file, from_run)
        assert from_file.shape == (2, 2, split.frames, 58)


def test_raw_weights_differ_from_the_average(runs, split):
    inputs = online.speaker_inputs(split, [0])
    ema = registry.load_generator(runs["transvae"].out).react(inputs, m=1)
    raw = registry.load_generator(runs["transvae"].out, ema=False).react(inputs, m=1)
    assert np.abs(ema - raw).max() > 0


def test_options_a_generator_does_not_take_are_refused(runs):
    with pytest.raises(UsageError, match="transvae generator takes no options; got steps"):
        registry.load_generator(runs["transvae"].out, steps=10)
    with pytest.raises(UsageError, match="got wings"):
        registry.load_generator(runs["reactdiff"].out, wings=2)


def test_a_posnet_checkpoint_is_not_a_generator(cfg, tmp_path):
    reactions = np.random.default_rng(0).normal(size=(2, 1, 6 * cfg.window, 58))
    smoother = posnet.train_model(cfg, reactions, source="x", out=tmp_path, steps=1, hidden=4)
    with pytest.raises(UsageError, match="not a generator"):
        registry.load_generator(smoother.out)


def test_an_unknown_model_kind_is_named(runs, tmp_path):
    state = train.load_checkpoint(runs["transvae"].out)
    state["identity"] = {**state["identity"], "model": "lstm"}
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(UsageError, match="no generator for a 'lstm' checkpoint"):
        registry.load_generator(tmp_path)


def test_baselines_by_name_read_names_loosely(corpus, split):
    train_split = corpus.split("train")
    assert isinstance(registry.baseline("nn_motion", train_split), baselines.NearestMotion)
    assert isinstance(registry.baseline("MEAN-FRAME", train_split), baselines.MeanFrame)
    assert isinstance(registry.baseline("mirror"), baselines.Mirror)
    assert registry.baseline("GT", listener=split).describe() == "GT"
    with pytest.raises(UsageError, match="valid: GT, Mirror"):
        registry.baseline("oracle", train_split)


# --- The interface: react over speaker inputs ----------------------------------------------------


def test_react_does_not_depend_on_the_chunking(corpus, split):
    random = registry.baseline("Random", corpus.split("train"))
    inputs = online.speaker_inputs(split, [4, 1, 0])
    whole = random.react(inputs, m=2, seed=3, chunk=8)
    single = random.react(inputs, m=2, seed=3, chunk=1)
    np.testing.assert_array_equal(whole, single)
    alone = random.react(online.speaker_inputs(split, [1]), m=2, seed=3)
    np.testing.assert_array_equal(whole[1], alone[0])  # the seeds follow the item


def test_react_equals_the_online_loop_on_arrays(corpus, split):
    """react over a split's inputs is the loop over the same arrays, with the items as seeds."""
    random = registry.baseline("Random", corpus.split("train"))
    inputs = online.speaker_inputs(split, [2, 5])
    speaker, audio = inputs.arrays()
    looped = online.generate(random, speaker, audio, m=3, seed=9, items=[2, 5])
    np.testing.assert_array_equal(random.react(inputs, m=3, seed=9), looped.numpy())
    from_arrays = online.SpeakerInputs.from_arrays(speaker, audio, items=[2, 5])
    np.testing.assert_array_equal(random.react(from_arrays, m=3, seed=9), looped.numpy())


def test_gt_follows_the_items_and_refuses_another_split(corpus, split):
    gt = registry.baseline("GT", listener=split)
    out = gt.react(online.speaker_inputs(split, [5, 1]), m=2, chunk=1)
    listeners = split.stack("coeffs", "listener")
    np.testing.assert_array_equal(out[:, 1], listeners[[5, 1]])
    with pytest.raises(UsageError, match="speakers come from split 'train'"):
        gt.react(online.speaker_inputs(corpus.split("train"), [0]), m=1)


def test_speaker_inputs_refuse_bad_items_and_react_bad_counts(corpus, split):
    with pytest.raises(UsageError, match="items must be indices"):
        online.speaker_inputs(split, [len(split)])
    mirror = registry.baseline("Mirror")
    inputs = online.speaker_inputs(split, [0])
    for bad in ({"m": 0}, {"chunk": 0}, {"m": 1.5}):
        with pytest.raises(UsageError, match="integer >= 1"):
            mirror.react(inputs, **{"m": 1, **bad})
    with pytest.raises(UsageError, match="SpeakerInputs"):
        mirror.react(split, m=1)


def test_speaker_inputs_read_audio_only_when_asked(split):
    inputs = online.speaker_inputs(split, [0, 1])
    speaker, audio = inputs.arrays(audio=False)
    assert audio is None and speaker.shape == (2, split.frames, 58)
    assert inputs.arrays([1])[1].shape == (1, split.frames, split.audio_dim)
    with pytest.raises(UsageError, match="needs the speaker's audio"):
        online.SpeakerInputs.from_arrays(speaker).arrays(audio=True)


# --- The command line reaches every generator through the registry -------------------------------


def test_generate_command_with_a_baseline(corpus, split, tmp_path, capsys):
    from reactlib.suite import cli

    out = tmp_path / "gt.npy"
    argv = ["generate", "--baseline", "GT", "--profile", "ci", "--data", str(corpus.root)]
    assert cli.main([*argv, "--m", "2", "--items", "3", "--quiet", "--out", str(out)]) == 0
    pred = np.load(out)
    assert pred.shape == (3, 2, split.frames, 58)
    np.testing.assert_array_equal(pred[:, 1], split.stack("coeffs", "listener")[:3])
    assert "(GT) ->" in capsys.readouterr().out
    assert cli.main([*argv, "--steps", "5", "--out", str(out)]) == 2
    assert "--steps go with --ckpt" in capsys.readouterr().err


def test_generate_command_refuses_a_sampler_option_for_trans_vae(runs, corpus, tmp_path, capsys):
    from reactlib.suite import cli

    argv = ["generate", "--ckpt", str(runs["transvae"].out), "--data", str(corpus.root)]
    assert cli.main([*argv, "--sampler", "ode", "--out", str(tmp_path / "x.npy")]) == 2
    assert "transvae generator takes no options; got sampler" in capsys.readouterr().err
