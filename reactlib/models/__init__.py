"""The models of both papers, each in its own module, and the one road to all of them:

- :mod:`~reactlib.models.reactdiff_net`: ReactDiff's denoiser network;
  :mod:`~reactlib.models.reactdiff`: ReactDiff as a model (EDM wrapper and statistics), its
  recipe, objective, training and generator; :mod:`~reactlib.models.losses`: both papers'
  training losses (FBK, FAC; PosNet's eq 14-18);
- :mod:`~reactlib.models.transvae`: the REACT baseline Trans-VAE;
- :mod:`~reactlib.models.posnet`: PFLPosNet's PosNet, its training, and the seam fixes it is
  compared with;
- :mod:`~reactlib.models.baselines`: GT, Mirror, Random, nearest neighbours, mean frame;
- :mod:`~reactlib.models.windows`: what every windowed model shares (statistics, training
  windows);
- :mod:`~reactlib.models.registry`: :func:`load_generator` (a checkpoint or trained run -> its
  generator) and :func:`baseline` (a baseline by name).

The networks' public names and the registry's are also here (``rl.models.ReactDiffNet``,
``rl.models.PosNet``, ``rl.models.load_generator``).
"""

from reactlib._lazy import exports

NETWORK = (
    "ADDED_LATER", "OFFICIAL_CODE_PARAMETERS_M", "PAPER_PARAMETERS_M", "PROFILE_SIZES",
    "SPEAKER_CONTEXTS", "AdaGN", "CausalConv", "CausalCrossAttention", "CoefficientFilter",
    "CoefficientPath", "FourierFeatures", "ReactDiffConfig", "ReactDiffNet", "ResBlock",
    "causal_mask", "mapping", "profile_config", "timestamp_features",
)  # fmt: skip
POSNET = ("POSE_DIMS", "POSNET_HIDDEN", "PosNet", "PosNetConfig")
REGISTRY = ("KINDS", "baseline", "load_generator")

__getattr__, __dir__ = exports(
    __name__,
    {
        **{name: f"reactlib.models.reactdiff_net:{name}" for name in NETWORK},
        **{name: f"reactlib.models.posnet:{name}" for name in POSNET},
        **{name: f"reactlib.models.registry:{name}" for name in REGISTRY},
    },
)
