"""One face: the 58 face coefficients and emotion-25 (:mod:`~reactlib.face.coeffs`), head
kinematics under cropping (:mod:`~reactlib.face.kinematics`), the parametric renderer
(:mod:`~reactlib.face.render`), video files (:mod:`~reactlib.face.video`), face detection and
tracking (:mod:`~reactlib.face.detect`), PFL's fixed and the floating crop windows
(:mod:`~reactlib.face.pfl`), and a photograph moving along a known path for the detector's tests
(:mod:`~reactlib.face.footage`). Nothing here knows of corpora or models."""

from reactlib._lazy import exports

__getattr__, __dir__ = exports(__name__, {})
