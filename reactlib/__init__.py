"""reactlib: the tested package behind the ReactLab notebook suite.

The folders are the layers; imports point down only (``docs/design.md`` draws the map):

- ``errors``, ``paths``, ``config``, ``runtime``: typed errors, the checkout's folders, profiles,
  seeding, devices and progress bars;
- ``face/``: one face: the 58 coefficients and emotion-25, head kinematics, the renderer, video
  files, face detection, the PFL and floating crops;
- ``data/``: corpora: the REACT 2024 layout, splits, audio features, SynthReact's people and its
  corpus;
- ``diffusion``, ``train``, ``online``: the engines: EDM and its samplers, the one trainer, the
  online window loop with the interface every generator answers;
- ``models/``: ReactDiff (network, model, losses), Trans-VAE, PosNet, the baselines, the
  training windows they share, and the registry that turns a checkpoint into a generator;
- ``rules``, ``metrics/``: SynthReact's rules measured, the REACT metrics, realism, video metrics;
- ``suite/``: the notebook runner, the widgets, results files with provenance, the CLI.

Notebooks use it as ``import reactlib as rl``. Every module is reachable by its short name
(``rl.coeffs`` is ``reactlib.face.coeffs``, ``rl.reactdiff`` is ``reactlib.models.reactdiff``,
``rl.notebooks`` is ``reactlib.suite.runner``) and is imported on first use, so
``python -m reactlib run`` starts without paying for torch, and a notebook only pays for what it
touches.
"""

from importlib.metadata import PackageNotFoundError, version

from reactlib._lazy import exports

try:
    __version__ = version("reactlib")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

MODULES = {
    # the layers
    "face": "reactlib.face",
    "data": "reactlib.data",
    "models": "reactlib.models",
    "metrics": "reactlib.metrics",
    "suite": "reactlib.suite",
    # base and engines
    "config": "reactlib.config",
    "errors": "reactlib.errors",
    "paths": "reactlib.paths",
    "runtime": "reactlib.runtime",
    "diffusion": "reactlib.diffusion",
    "online": "reactlib.online",
    "train": "reactlib.train",
    "rules": "reactlib.rules",
    "criteria": "reactlib.criteria",
    # face/
    "coeffs": "reactlib.face.coeffs",
    "kinematics": "reactlib.face.kinematics",
    "render": "reactlib.face.render",
    "video": "reactlib.face.video",
    "detect": "reactlib.face.detect",
    "pfl": "reactlib.face.pfl",
    "footage": "reactlib.face.footage",
    # data/
    "layout": "reactlib.data.layout",
    "corpus": "reactlib.data.corpus",
    "audio": "reactlib.data.audio",
    "behaviour": "reactlib.data.behaviour",
    "synth": "reactlib.data.synth",
    # models/
    "reactdiff_net": "reactlib.models.reactdiff_net",
    "reactdiff": "reactlib.models.reactdiff",
    "losses": "reactlib.models.losses",
    "transvae": "reactlib.models.transvae",
    "posnet": "reactlib.models.posnet",
    "baselines": "reactlib.models.baselines",
    "windows": "reactlib.models.windows",
    "registry": "reactlib.models.registry",
    # suite/
    "notebooks": "reactlib.suite.runner",
    "results": "reactlib.suite.results",
    "widgets": "reactlib.suite.widgets",
    "cli": "reactlib.suite.cli",
}
"""``rl.<name>`` -> the module it is."""

__all__ = ["__version__", *MODULES]
__getattr__, __dir__ = exports(__name__, MODULES)
