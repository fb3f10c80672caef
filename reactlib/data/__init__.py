"""Corpora: the REACT 2024 layout on disk (:mod:`~reactlib.data.layout`), its splits and corpora
(:mod:`~reactlib.data.corpus`), speaker audio features (:mod:`~reactlib.data.audio`), and
SynthReact: how its people behave (:mod:`~reactlib.data.behaviour`) and the corpus written from
them (:mod:`~reactlib.data.synth`). No torch: models read corpora, never the reverse.

The layout's and the corpus' public names are also here (``rl.data.Split``,
``rl.data.open_corpus``)."""

from reactlib._lazy import exports

LAYOUT = (
    "AUDIO_FEATURES_DEFAULT", "CORPUS_FILE", "DATA_ENV", "FALLBACKS", "MODALITIES",
    "MODALITY_DIRS", "MODALITY_SUFFIX", "PAIR_HEADER", "REACT_FRAMES", "SPLITS",
    "TOKENS_PER_FRAME_LIMIT", "USED_FRAMES", "DataError", "NeighbourFallbackWarning",
    "audio_feature_file", "check_audio_features", "clip_file", "load_audio_features",
    "load_coeffs", "load_emotion", "load_feature_array", "load_video", "neighbours_file",
    "pairs_file", "person_variants", "read_corpus_meta", "read_npy", "read_pairs",
    "resolve_root", "save_coeffs", "save_emotion", "save_neighbours", "validate_corpus_meta",
    "write_pairs",
)  # fmt: skip
CORPUS = ("COEFF_VIEWS", "Corpus", "Item", "Split", "check_view", "open_corpus")

__getattr__, __dir__ = exports(
    __name__,
    {
        **{name: f"reactlib.data.layout:{name}" for name in LAYOUT},
        **{name: f"reactlib.data.corpus:{name}" for name in CORPUS},
    },
)
