"""ReactDiff end to end on a tiny SynthReact corpus: the recipe and its overrides, the window-pair
batches, the objective's sharding, training, loading, generation and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reactlib import config, data, online, train
from reactlib.data import synth
from reactlib.errors import UsageError
from reactlib.models import reactdiff, windows
from reactlib.suite import cli

STEPS = 3


def sample(model, split, *, items=None, m=10, seed=0, chunk=8, **options):
    """``model``'s reactions to the speakers of ``split``'s ``items``, from its generator."""
    generator = reactdiff.ReactDiffGenerator(model, **options)
    return generator.react(online.speaker_inputs(split, items), m=m, seed=seed, chunk=chunk)


@pytest.fixture(scope="module")
def cfg():
    return config.resolve("ci", progress=False)


@pytest.fixture(scope="module")
def corpus(cfg, tmp_path_factory):
    root = synth.ensure(cfg, tmp_path_factory.mktemp("corpus") / "synth", videos=0)
    return data.Corpus(root)


@pytest.fixture(scope="module")
def run(cfg, corpus, tmp_path_factory):
    """A ReactDiff trained for a few steps into a folder, with a look-back context."""
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    trained = reactdiff.train_model(
        cfg, corpus, out=out, steps=STEPS, batch_size=4, lookback=8, log_every=1
    )
    return trained


# --- Recipe ----------------------------------------------------------------------------------


def test_recipe_starts_from_the_profile(cfg):
    rec = reactdiff.recipe(cfg)
    assert rec.train.steps == cfg.train_steps and rec.train.batch_size == cfg.batch_size
    assert rec.train.lr == cfg.learning_rate and rec.net.window == cfg.window
    assert rec.net.speaker_context == "window" and rec.net.lookback == 0
    assert rec.loss.fac_weight == 1e-4 and rec.loss.fbk_dims == "all"
    assert rec.audio_features == "mfcc78"


def test_recipe_routes_overrides_and_reads_strings(cfg):
    rec = reactdiff.recipe(
        cfg,
        lookback="24",
        fbk_dims="pose",
        fac_kinds="symmetric,co_occurring",
        steps="7",
        bf16="false",
        channels=(16, 32),
    )
    assert rec.net.speaker_context == "lookback" and rec.net.lookback == 24
    assert rec.net.channels == (16, 32)
    assert rec.loss.fbk_dims == "pose"
    assert rec.loss.fac_kinds == ("symmetric", "co_occurring")
    assert rec.train.steps == 7 and rec.train.bf16 is False


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("no_such", 1, "unknown ReactDiff setting 'no_such'"),
        ("speaker_context", "future", "speaker_context"),
        ("fbk_dims", "eyes", "fbk dims"),
        ("steps", "many", "steps"),
    ],
)
def test_bad_settings_are_usage_errors(cfg, key, value, message):
    with pytest.raises(UsageError, match=message):
        reactdiff.recipe(cfg, **{key: value})


def test_identity_names_corpus_profile_and_every_setting(cfg, corpus):
    rec = reactdiff.recipe(cfg)
    identity = rec.identity(corpus.identity(), "ci")
    assert identity["corpus"] == {"kind": "SynthReact", "digest": corpus.meta["digest"]}
    assert identity["net"]["channels"] == list(rec.net.channels)
    changed = reactdiff.recipe(cfg, fac_weight=0.01).identity(identity["corpus"], "ci")
    assert train.identity_hash(changed) != train.identity_hash(identity)


# --- Batches ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs(cfg, corpus):
    rec = reactdiff.recipe(cfg, lookback=8)
    split = corpus.split("train")
    model = reactdiff.build(rec, split)
    return windows.WindowPairs(split, rec.net, model), model, split


def test_batches_depend_on_seed_and_step_only(pairs):
    p, _, _ = pairs
    a, b = p.batch(6, 0, 5, 0.5), p.batch(6, 0, 5, 0.5)
    for key in a:
        assert torch.equal(a[key], b[key])
    c = p.batch(6, 0, 6, 0.5)
    assert not torch.equal(a["noise"], c["noise"])
    assert (a["starts"] >= p.window).all() and (a["starts"] % p.window == 0).all()


def test_conditions_hold_the_past_frame_the_timestamps_and_a_causal_lookback(pairs):
    p, model, split = pairs
    items = torch.tensor([0, 1])
    starts = torch.tensor([0, 32])
    cond = p.conditions(items, starts, torch.tensor([False, True]))
    listener = model.normalize(torch.from_numpy(split.coeffs(split.items[1].listener)))
    speaker = model.normalize(torch.from_numpy(split.coeffs(split.items[1].speaker)))
    assert torch.equal(cond["past"][0], torch.zeros(58))  # the first window has no past
    torch.testing.assert_close(cond["past"][1], listener[31])
    assert torch.equal(cond["h"][1], torch.arange(32, 48))
    assert torch.equal(cond["speaker_h"][1], torch.arange(24, 48))
    torch.testing.assert_close(cond["speaker"][1], speaker[24:48])
    # the look-back before frame 0 is padding: index -1 and zeros
    assert torch.equal(cond["speaker_h"][0, :8], torch.full((8,), -1))
    assert (cond["speaker"][0, :8] == 0).all() and (cond["audio"][0, :8] == 0).all()
    assert cond["cond_mask"].tolist() == [True, False]


def test_rank_shares_of_a_step_make_up_the_global_batch(cfg, pairs):
    """Two ranks' losses average to the one-process loss of the same global batch (eval mode:
    no dropout), which is what DistributedDataParallel's gradient averaging relies on."""
    p, model, _ = pairs
    rec = reactdiff.recipe(cfg, lookback=8, batch_size=4)
    objective = reactdiff.make_objective(p, rec)
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        whole, _ = objective(model, 3, 0, 1)
        halves = [objective(model, 3, rank, 2)[0] for rank in (0, 1)]
    torch.testing.assert_close(whole, sum(halves) / 2, rtol=1e-5, atol=1e-6)


# --- Training, loading, generation -----------------------------------------------------------


def test_training_writes_a_loadable_run(run):
    assert run.step == STEPS and run.trained_now
    assert (run.out / "checkpoint.pt").is_file() and (run.out / "log.csv").is_file()
    assert {"loss", "dm", "fbk", "fac", "late_share"} <= set(run.log.columns)
    model, identity = reactdiff.load(run.out / "checkpoint.pt")
    assert identity["net"]["lookback"] == 8 and identity["profile"] == "ci"
    assert model.config.speaker_context == "lookback"
    # the statistics travel in the checkpoint
    assert torch.equal(model.coeff_std, run.ema.coeff_std)
    assert not torch.equal(model.coeff_std, torch.ones(58))


def test_generated_reactions_have_the_contract_shape_and_ignore_chunking(run, corpus):
    model, _ = reactdiff.load(run.out)
    split = corpus.split("test")
    kwargs = dict(m=2, seed=3, steps=2, items=[0, 1, 2])
    a = sample(model, split, chunk=3, **kwargs)
    b = sample(model, split, chunk=1, **kwargs)
    assert a.shape == (3, 2, split.frames, 58) and a.dtype == np.float32
    assert np.isfinite(a).all()
    # the same noise whatever the chunk; only the matrix products' rounding depends on batch size
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert np.abs(a[0, 0] - a[0, 1]).max() > 1e-3  # two reactions, two seeds


def test_a_post_processor_may_change_the_sampled_window_in_place(run, corpus):
    """The generator samples in inference mode but hands back an ordinary tensor: a hook that
    edits the window in place (as a pose smoother may) works, and its edit is what is kept."""
    model, _ = reactdiff.load(run.out)
    speaker, audio = online.speaker_inputs(corpus.split("test"), [0]).arrays()
    generator = reactdiff.ReactDiffGenerator(model, steps=2)

    def zero_pose(window, ctx):
        assert not window.is_inference()
        window[..., -6:] = 0
        return window

    out = online.generate(generator, speaker, audio, m=2, seed=1, post=zero_pose)
    assert (out[..., -6:] == 0).all() and out[..., :-6].abs().max() > 0


def test_ode_generation_is_deterministic_and_differs_from_sde(run, corpus):
    model, _ = reactdiff.load(run.out)
    split = corpus.split("test")
    ode = [sample(model, split, m=1, steps=2, items=[0], sampler="ode") for _ in range(2)]
    sde = sample(model, split, m=1, steps=2, items=[0], sampler="sde")
    np.testing.assert_array_equal(ode[0], ode[1])
    assert np.abs(ode[0] - sde).max() > 0


def test_cached_training_trains_once_per_configuration(cfg, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv(train.MODELS_ENV, str(tmp_path))
    kwargs = dict(steps=2, batch_size=2)
    first = reactdiff.train_model(cfg, corpus, **kwargs)
    again = reactdiff.train_model(cfg, corpus, **kwargs)
    assert first.trained_now and not again.trained_now and again.out == first.out
    other = reactdiff.train_model(cfg, corpus, fac_weight=0.01, **kwargs)
    assert other.trained_now and other.out != first.out


def test_precomputed_audio_features_set_the_model_width(cfg, corpus, tmp_path):
    root = corpus.root
    split = corpus.split("train")
    for clip in {item.speaker for s in ("train",) for item in corpus.split(s).items}:
        path = data.audio_feature_file(root, clip, "tiny12", must_exist=False)
        rng = np.random.default_rng(abs(hash(clip)) % 2**32)
        np.save(path, rng.normal(size=(split.frames, 12)).astype(np.float32))
    trained = reactdiff.train_model(
        cfg, corpus, out=tmp_path, steps=1, batch_size=2, audio_features="tiny12"
    )
    assert trained.model.config.audio_dim == 12
    assert trained.identity["audio_features"] == "tiny12"


# --- Command line ----------------------------------------------------------------------------


def test_cli_trains_and_generates(run, corpus, tmp_path, capsys):
    out = tmp_path / "pred.npy"
    code = cli.main(
        ["generate", "--ckpt", str(run.out / "checkpoint.pt"), "--data", str(corpus.root)]
        + ["--m", "2", "--steps", "2", "--items", "2", "--device", "cpu", "--quiet"]
        + ["--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    pred = np.load(out)
    assert pred.shape == (2, 2, corpus.split("test").frames, 58)


def test_cli_refuses_a_run_folder_of_another_configuration(run, corpus, capsys):
    code = cli.main(
        ["train", "reactdiff", "--profile", "ci", "--data", str(corpus.root)]
        + ["--out", str(run.out), "--device", "cpu", "--set", "steps=3", "--set", "fac_weight=0.5"]
    )
    assert code == 2
    assert "fac_weight" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--ckpt", "missing.pt"], 1, "missing.pt"),
        (["--split", "dev"], 2, "--split"),
        (["--m", "0"], 2, "--m"),
    ],
)
def test_cli_generate_errors_are_clear(run, corpus, tmp_path, capsys, args, code, message):
    base = {"--ckpt": str(run.out / "checkpoint.pt"), "--split": "test", "--m": "2"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["generate", "--data", str(corpus.root), "--out", str(tmp_path / "p.npy")]
    for key, value in base.items():
        argv += [key, value]
    assert cli.main(argv) == code
    assert message in capsys.readouterr().err


def test_cli_train_rejects_an_unknown_setting(corpus, tmp_path, capsys):
    code = cli.main(
        ["train", "reactdiff", "--profile", "ci", "--data", str(corpus.root)]
        + ["--out", str(tmp_path), "--set", "wings=2"]
    )
    assert code == 2
    assert "wings" in capsys.readouterr().err


def test_the_full_size_model_trains_a_step_on_the_cpu(corpus, tmp_path):
    """The paper-size configuration, its real architecture, one step (on the ci corpus)."""
    full = config.resolve("full", progress=False)
    trained = reactdiff.train_model(full, corpus, out=tmp_path, steps=1, batch_size=2, device="cpu")
    assert trained.step == 1 and trained.identity["profile"] == "full"
    assert trained.model.config.channels == (128, 256, 512)
    assert trained.model.config.depths == (2, 4, 4)
    assert np.isfinite(trained.log["loss"]).all()


def test_sde_noise_drawn_per_step_or_from_a_tree(run, corpus):
    model, _ = reactdiff.load(run.out)
    split = corpus.split("test")
    kwargs = dict(m=1, steps=3, items=[0], sampler="sde")
    steps = [sample(model, split, noise="steps", **kwargs) for _ in range(2)]
    tree = sample(model, split, noise="tree", **kwargs)
    np.testing.assert_array_equal(steps[0], steps[1])
    assert np.abs(steps[0] - tree).max() > 0  # the same law, another draw
    ode = [sample(model, split, noise=n, **{**kwargs, "sampler": "ode"}) for n in reactdiff.NOISES]
    np.testing.assert_array_equal(ode[0], ode[1])  # the ODE draws no noise
    with pytest.raises(UsageError, match="noise must be one of"):
        reactdiff.ReactDiffGenerator(model, noise="pink")
