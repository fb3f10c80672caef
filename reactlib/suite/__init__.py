"""The suite on top of everything: the notebook runner (:mod:`~reactlib.suite.runner`), the
notebooks' widgets (:mod:`~reactlib.suite.widgets`), results files with provenance
(:mod:`~reactlib.suite.results`), the generated results page (:mod:`~reactlib.suite.report`) and
the command line (:mod:`reactlib.suite.cli`)."""

from reactlib._lazy import exports

__getattr__, __dir__ = exports(__name__, {})
