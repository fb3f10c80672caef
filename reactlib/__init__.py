"""reactlib: the tested package behind the ReactLab notebook suite.

Notebooks use it as ``import reactlib as rl`` and reach each idea through its module:
``rl.config.resolve(...)``, ``rl.runtime.seed_everything(...)``, ``rl.results.save(...)``.
Submodules are imported on first use, so ``python -m reactlib run`` starts without
paying for torch, and a notebook only pays for what it touches.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reactlib")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_SUBMODULES = (
    "audio",
    "baselines",
    "cli",
    "coeffs",
    "config",
    "data",
    "detect",
    "diffusion",
    "footage",
    "kinematics",
    "losses",
    "metrics",
    "models",
    "notebooks",
    "online",
    "paths",
    "pfl",
    "posnet",
    "reactdiff",
    "render",
    "results",
    "rules",
    "runtime",
    "synth",
    "transvae",
    "train",
    "video",
    "widgets",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'reactlib' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
