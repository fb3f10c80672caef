"""Fixtures several test files share: the ci profile and its SynthReact corpus.

A file that needs its own corpus (one it modifies, or another profile) defines a fixture of the
same name, which takes precedence over these."""

from __future__ import annotations

import pytest

from reactlib import config, data
from reactlib.data import synth


@pytest.fixture(scope="session")
def cfg():
    """The ci profile, without progress bars."""
    return config.resolve("ci", progress=False)


@pytest.fixture(scope="session")
def corpus(cfg, tmp_path_factory):
    """The ci-size SynthReact corpus without videos, written once per test session: read-only
    for the tests."""
    root = synth.ensure(cfg, tmp_path_factory.mktemp("ci-corpus") / "synth", videos=0)
    return data.Corpus(root)
