"""A parametric 3D cartoon face renderer: 58-d coefficient clips to RGB video.

It stands in for PIRender/FaceVerse, whose weights cannot be shipped: a template face of about
360 3D vertices (face oval, hair, ears, neck and shoulders, brows, eyes with lids and irises, nose,
cheeks, lips, teeth and tongue), deformed by one linear displacement field per ARKit blendshape,
posed, projected through a pinhole camera and drawn as anti-aliased polygons with OpenCV.

Conventions
-----------
**Head coordinates** (where the template is designed): ``x`` to the subject's left (the image's
right for a frontal face), ``y`` up, ``z`` out of the face toward the camera; the face oval is 0.3
units wide and 0.4 high and its box is centred on the origin, which is also the point the head
rotates about (about 0.09 behind the face outline, so a turned face also shifts sideways). "Left"
in a blendshape or part name is always the subject's left.

**Camera**: at the origin, looking down ``+z``, image ``x`` right and ``y`` down. A head point
``p`` goes to ``X = R(pitch, yaw, roll) @ diag(1, -1, -1) @ p + (tx, ty, tz)`` and projects to
``(f X / Z + cx, f Y / Z + cy)``, with ``(cx, cy) = ((W - 1) / 2, (H - 1) / 2)`` the image centre
(pixel centres are integers) and ``f = FOCAL_SCALE * min(H, W)`` pixels. The neutral face at
``tz = NEUTRAL_DISTANCE`` so spans about 44% of a square image's width, ``tx`` moves it by
``f tx / tz`` pixels and ``tz`` scales it by ``1 / tz``.

**Rotation**: ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (pitch applied first), right-handed, in
camera axes. Positive pitch nods the face down (the nose tip moves down the image), positive yaw
turns it toward the image's left (the subject's right), positive roll tilts it clockwise in the
image (the line from the image-left eye to the image-right eye makes angle ``roll`` with the
image's x axis, measured with y down). The shoulders follow the translation but not the rotation.

**Drawing**: hair, shoulders, neck, ears, face and cheeks are drawn first, in that order; then
the eye regions (with their brows), the nose and the mouth as whole groups in painter's order by
mean depth, so the near side of a turned head covers the far side; the fringe last. A polygon
whose projected signed area falls to zero or flips (a closed eye, a back-facing part) is skipped.

Why one module of about 850 lines: most of it is the template face, built part by part (head,
eyes, nose, mouth, fringe) through one private builder, and the camera and the drawing read the
private model that builder makes; split, the parts would share those privates across files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

import cv2
import numpy as np

from reactlib.face import kinematics
from reactlib.face.coeffs import (
    EXPRESSION,
    EXPRESSION_NAMES,
    NEUTRAL_DISTANCE,
    NUM_COEFFS,
    NUM_EXPRESSION,
    ROTATION,
    TRANSLATION,
    index,
)

DEFAULT_SIZE = 256
FOCAL_SCALE = 2.6
"""Focal length in pixels per pixel of the image's shorter side."""
MIN_DISTANCE = 0.5
"""Smallest camera distance ``tz`` accepted: closer, the head would reach the camera plane."""
HAIR_STYLES = ("side part", "long", "bangs")

_SHIFT = 4  # fillPoly's fractional bits: vertices land on a 1/16 pixel grid
_MIN_AREA = 0.25  # square pixels; thinner polygons (a closed eye) are not drawn
_FAR = 2.0**25  # projected coordinates are clamped here so that 16x still fits in int32
Colour = tuple[int, int, int]


# --- Identity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What makes one rendered person look like themselves: template shape and colours.

    Shape factors scale parts of the template (1 = the default face); ``brow_height`` shifts the
    brows in template units. Colours are RGB. ``hair_style`` indexes :data:`HAIR_STYLES`.
    """

    face_width: float = 1.0
    face_height: float = 1.0
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    brow_height: float = 0.0
    brow_thickness: float = 1.0
    hair_style: int = 0
    skin: Colour = (226, 184, 156)
    hair: Colour = (72, 48, 34)
    lips: Colour = (186, 102, 102)
    iris: Colour = (94, 66, 44)
    shirt: Colour = (58, 92, 140)
    background: tuple[Colour, Colour] = ((206, 214, 222), (150, 166, 186))

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hair_style":
                if isinstance(value, bool) or value not in range(len(HAIR_STYLES)):
                    raise ValueError(
                        f"hair_style must be an int in [0, {len(HAIR_STYLES)}), got {value!r}"
                    )
                object.__setattr__(self, f.name, int(value))
            elif f.name == "brow_height":
                if not -0.02 <= float(value) <= 0.02:
                    raise ValueError(f"brow_height must be in [-0.02, 0.02], got {value!r}")
                object.__setattr__(self, f.name, float(value))
            elif f.name == "background":
                object.__setattr__(self, f.name, tuple(_colour(f.name, c) for c in value))
                if len(self.background) != 2:
                    raise ValueError("background must be two RGB colours (top, bottom)")
            elif f.type == "Colour":
                object.__setattr__(self, f.name, _colour(f.name, value))
            elif not 0.5 <= float(value) <= 2.0:
                raise ValueError(f"{f.name} must be a scale factor in [0.5, 2], got {value!r}")
            else:
                object.__setattr__(self, f.name, float(value))

    @classmethod
    def default(cls) -> Identity:
        """The default face (every shape factor 1)."""
        return cls()

    @classmethod
    def random(cls, seed: int) -> Identity:
        """A random but plausible face; the same seed always gives the same identity."""
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        rng = np.random.default_rng(int(seed))

        def pick(palette, jitter):
            base = np.asarray(palette[rng.integers(len(palette))], dtype=float)
            return tuple(int(c) for c in np.clip(base + rng.uniform(-jitter, jitter, 3), 0, 255))

        skin = pick(_SKINS, 10)
        hue = rng.uniform(0, 180)
        top = _hsv(hue, rng.uniform(20, 70), rng.uniform(190, 235))
        bottom = _hsv(hue + rng.uniform(-15, 15), rng.uniform(30, 90), rng.uniform(120, 180))
        return cls(
            face_width=rng.uniform(0.9, 1.1),
            face_height=rng.uniform(0.93, 1.07),
            eye_spacing=rng.uniform(0.92, 1.08),
            eye_size=rng.uniform(0.85, 1.15),
            nose_length=rng.uniform(0.85, 1.2),
            nose_width=rng.uniform(0.85, 1.25),
            mouth_width=rng.uniform(0.85, 1.15),
            lip_thickness=rng.uniform(0.8, 1.3),
            brow_height=rng.uniform(-0.005, 0.008),
            brow_thickness=rng.uniform(0.8, 1.35),
            hair_style=int(rng.integers(len(HAIR_STYLES))),
            skin=skin,
            hair=pick(_HAIRS, 12),
            lips=_mix(_mix(skin, (196, 70, 84), rng.uniform(0.35, 0.6)), (0, 0, 0), 0.08),
            iris=pick(_IRISES, 12),
            shirt=_hsv(rng.uniform(0, 180), rng.uniform(60, 200), rng.uniform(60, 200)),
            background=(top, bottom),
        )


_SKINS = ((246, 214, 190), (232, 190, 160), (214, 164, 126), (182, 128, 92), (140, 94, 64),
          (98, 64, 44))  # fmt: skip
_HAIRS = ((26, 22, 22), (64, 42, 30), (108, 72, 44), (150, 86, 46), (214, 180, 120),
          (160, 156, 152))  # fmt: skip
_IRISES = ((92, 60, 36), (54, 36, 24), (120, 100, 52), (76, 112, 70), (70, 110, 160),
           (110, 120, 128))  # fmt: skip


def _colour(name: str, value) -> Colour:
    c = tuple(int(v) for v in value)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise ValueError(f"{name} must be an RGB triple of ints in [0, 255], got {value!r}")
    return c


def _mix(a, b, t: float) -> Colour:
    """``a`` moved a fraction ``t`` of the way to ``b``."""
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b, strict=True))


def _hsv(hue: float, sat: float, val: float) -> Colour:
    """RGB of an OpenCV HSV colour (hue in degrees / 2, saturation and value in [0, 255])."""
    hsv = np.array([[[round(hue) % 180, round(sat), round(val)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


# --- Template --------------------------------------------------------------------------------


def _surface(x, y):
    """Depth toward the camera of the face surface over head point ``(x, y)``: a curved mask."""
    return 0.11 - 1.2 * np.square(x) - 0.5 * np.square(y)


def _on_face(x, y, lift=0.0) -> np.ndarray:
    """Points on the face surface, raised by ``lift`` toward the camera: ``(..., 3)``."""
    x, y, lift = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, lift)))
    return np.stack([x, y, _surface(x, y) + lift], axis=-1)


def _ring(cx, cy, rx, ry, n, z) -> np.ndarray:
    """``n`` points of an ellipse in a plane facing the camera at depth ``z``."""
    a = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a), np.full(n, float(z))], axis=-1)


@dataclass
class _Poly:
    name: str
    group: str
    idx: np.ndarray
    colour: str


@dataclass
class _Builder:
    """Collects template vertices, named parts, polygons and blendshape displacements."""

    points: list[np.ndarray] = field(default_factory=list)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    polys: list[_Poly] = field(default_factory=list)
    moves: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    attached: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    body: list[np.ndarray] = field(default_factory=list)
    derived: list[_Derived] = field(default_factory=list)
    count: int = 0

    def add(self, name: str | None, pts) -> np.ndarray:
        pts = np.asarray(pts, dtype=float).reshape(-1, 3)
        idx = np.arange(self.count, self.count + len(pts))
        self.points.append(pts)
        self.count += len(pts)
        if name is not None:
            self.parts[name] = idx
        return idx

    def poly(self, name: str, group: str, idx, colour: str) -> None:
        idx = np.concatenate([np.atleast_1d(i) for i in idx]) if isinstance(idx, list) else idx
        self.polys.append(_Poly(name, group, np.asarray(idx), colour))
        self.parts.setdefault(name, np.asarray(idx))

    def move(self, shape: str, idx, dx=0.0, dy=0.0, dz=0.0) -> None:
        """Add a displacement (broadcast over ``idx``) to blendshape ``shape`` at weight 1."""
        idx = np.atleast_1d(idx)
        d = np.zeros((len(idx), 3))
        d[:, 0], d[:, 1], d[:, 2] = dx, dy, dz
        self.moves.append((EXPRESSION_NAMES.index(shape), idx, d))

    def attach(self, child, parent) -> None:
        """``child`` vertices copy every displacement of ``parent`` (one to one)."""
        self.attached.append((np.asarray(child), np.asarray(parent)))


_SIDES = (("Left", 1.0), ("Right", -1.0))
_JAW = {
    "jawOpen": (0.0, -0.042, -0.012),
    "jawForward": (0.0, -0.003, 0.02),
    "jawLeft": (0.02, 0.0, 0.0),
    "jawRight": (-0.02, 0.0, 0.0),
}
_MOUTH_Y = -0.112


def _jaw(b: _Builder, idx, weight) -> None:
    for shape, d in _JAW.items():
        b.move(shape, idx, *(c * np.asarray(weight) for c in d))


def _head(b: _Builder, idn: Identity) -> None:
    sx, sy = idn.face_width, idn.face_height
    # Hair behind the head: a cut-out behind the rotation centre, so it shows around the face
    # and on the far side of a turned head.
    a = np.linspace(np.pi + 0.35, -0.35, 17)
    rx, ry, yc = 0.178 * sx, 0.205 * sy, 0.035 * sy
    if idn.hair_style == 2:
        rx, ry = rx + 0.012, ry + 0.012
    arc = np.stack([rx * np.cos(a), yc + ry * np.sin(a), np.full_like(a, -0.04)], axis=-1)
    if idn.hair_style == 1:
        side = np.array([[1.03, -0.1], [1.08, -0.2], [1.1, -0.28], [0.75, -0.31]])
        right = np.stack([rx * side[:, 0], side[:, 1] * sy, np.full(4, -0.04)], axis=-1)
        left = right[::-1] * [-1.0, 1.0, 1.0]
        hair = np.concatenate([left, arc, right])
    else:
        hair = np.concatenate([arc, [[0.12 * sx, -0.06, -0.04], [-0.12 * sx, -0.06, -0.04]]])
    b.poly("hair_back", "hair_back", b.add(None, hair), "hair")

    # Shoulders and the bottom of the neck stay upright; the neck's top turns with the head.
    shoulders = np.array([[-0.08, -0.29], [-0.2, -0.32], [-0.33, -0.37], [-0.42, -0.5],
                          [-0.45, -0.7], [0.45, -0.7], [0.42, -0.5], [0.33, -0.37], [0.2, -0.32],
                          [0.08, -0.29]])  # fmt: skip
    body = b.add(None, np.c_[shoulders * [sx, 1.0], np.full(len(shoulders), -0.03)])
    b.poly("shoulders", "shoulders", body, "shirt")
    neck_top = b.add(None, [[0.066 * sx, -0.12 * sy, -0.01], [-0.066 * sx, -0.12 * sy, -0.01]])
    neck_bottom = b.add(None, [[-0.074 * sx, -0.36, -0.02], [0.074 * sx, -0.36, -0.02]])
    b.body += [body, neck_bottom]
    b.poly("neck", "neck", [neck_top, neck_bottom], "neck")

    for side, sgn in _SIDES:
        ear = np.array([[0.146, 0.046], [0.16, 0.058], [0.175, 0.05], [0.181, 0.02],
                        [0.174, -0.015], [0.16, -0.042], [0.146, -0.038]])  # fmt: skip
        pts = np.c_[sgn * ear[:, 0] * sx, ear[:, 1] * sy, np.full(len(ear), 0.005)]
        b.poly(f"{side.lower()}_ear", "ears", b.add(None, pts), "ear")

    # Face oval: widest at eye level, narrowing to a rounded chin.
    phi = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
    c, s = np.cos(phi), np.sin(phi)
    x = 0.15 * np.sign(s) * np.abs(s) ** np.where(c > 0, 0.75, 1.0)
    x *= 1.0 - 0.18 * np.maximum(-c, 0.0) ** 2
    x, y = x * sx, 0.2 * c * sy
    oval = b.add("face_oval", _on_face(x, y, -0.003))
    b.poly("face", "face", oval, "skin")
    jaw = np.clip((-0.085 * sy - y) / (0.075 * sy), 0.0, 1.0) * (1 - 0.6 * (x / (0.15 * sx)) ** 2)
    _jaw(b, oval, jaw)
    b.move("mouthShrugLower", oval, dy=0.005 * jaw * np.exp(-((x / 0.05) ** 2)))
    b.move("cheekPuff", oval, dx=0.1 * x * np.exp(-(((y + 0.075 * sy) / 0.05) ** 2)))

    for side, sgn in _SIDES:
        cx, cy = sgn * 0.085 * sx, -0.042 * sy
        pts = _ring(cx, cy, 0.027, 0.016, 10, 0.0)
        pts[:, 2] = _surface(pts[:, 0], pts[:, 1]) + 0.004
        cheek = b.add(f"{side.lower()}_cheek", pts)
        b.poly(f"{side.lower()}_cheek", "cheeks", cheek, "cheek")
        local = pts - [cx, cy, 0.0]
        b.move(f"cheekSquint{side}", cheek, dx=-sgn * 0.002, dy=0.014)
        b.move("cheekPuff", cheek, 0.25 * local[:, 0] + sgn * 0.01, 0.25 * local[:, 1], 0.01)
        b.move(f"mouthSmile{side}", cheek, dx=sgn * 0.003, dy=0.006)
        b.move(f"noseSneer{side}", cheek, dy=0.004)


def _eye(b: _Builder, idn: Identity, side: str, sgn: float) -> None:
    name, k, group = side.lower(), idn.eye_size, f"{side.lower()}_eye"
    cx, cy, half = sgn * 0.065 * idn.eye_spacing, 0.03, 0.029 * k

    def at(t):  # t runs from the inner corner (0) to the outer corner (1)
        t = np.asarray(t, dtype=float)
        return cx + sgn * half * (2 * t - 1), cy - 0.002 + 0.004 * t

    t = np.array([0.17, 0.33, 0.5, 0.67, 0.83])
    x, y = at(t)
    up_h = 0.0135 * k * np.sin(np.pi * t**0.85)
    lo_h = 0.0085 * k * np.sin(np.pi * t**1.15)
    bulge = -0.004 + 0.006 * np.sin(np.pi * t)
    inner = b.add(f"{name}_eye_inner", _on_face(*at(0.0), -0.009))
    outer = b.add(f"{name}_eye_outer", _on_face(*at(1.0), -0.004))
    upper = b.add(f"{name}_eye_upper", _on_face(x, y + up_h, bulge))
    lower = b.add(f"{name}_eye_lower", _on_face(x, y - lo_h, bulge))
    b.poly(f"{name}_eye", group, [inner, upper, outer, lower[::-1]], "eye_white")

    z = _surface(cx, cy) + 0.004
    r = 0.0105 * k
    iris = b.add(f"{name}_iris", _ring(cx, cy + 0.0005, r, r, 14, z))
    pupil = b.add(f"{name}_pupil", _ring(cx, cy + 0.0005, 0.45 * r, 0.45 * r, 10, z + 0.0005))
    glint = b.add(None, _ring(cx - 0.35 * r, cy + 0.4 * r, 0.2 * r, 0.2 * r, 6, z + 0.001))
    b.poly(f"{name}_iris", group, iris, "iris")
    b.poly(f"{name}_pupil", group, pupil, "pupil")
    b.poly(f"{name}_glint", group, glint, "glint")

    # Skin-coloured lids above and below the opening hide whatever part of the iris lies
    # outside it, so a closing lid covers the iris without any clipping.
    (xi, xo), (yi, yo) = at([0.0, 1.0])
    ext = b.add(None, _on_face([xi - sgn * 0.007, xo + sgn * 0.007], [yi, yo], -0.004))
    xa, ya = at([1.1, 0.75, 0.5, 0.25, -0.1])
    top = b.add(None, _on_face(xa, ya + up_h.max() + 0.011, -0.002))
    bottom = b.add(None, _on_face(xa, ya - lo_h.max() - 0.011, -0.002))
    b.poly(f"{name}_upper_lid", group, [ext[:1], inner, upper, outer, ext[1:], top], "skin")
    b.poly(f"{name}_lower_lid", group, [ext[:1], inner, lower, outer, ext[1:], bottom], "skin")
    # Lashes: a band along the upper lid, thickening outward, that follows the lid.
    lid = np.concatenate([inner, upper, outer])
    lash_pts = np.vstack(
        [_on_face(xi, yi, -0.009), _on_face(x, y + up_h, bulge), _on_face(xo, yo, -0.004)]
    )
    lash_pts[:, 1] += 0.0012 + 0.0022 * np.linspace(0, 1, 7) ** 0.7
    lash_pts[-1, 0] += sgn * 0.003
    lash = b.add(None, lash_pts)
    b.attach(lash, lid)
    b.poly(f"{name}_lash", group, [lid, lash[::-1]], "lash")

    h = up_h + lo_h
    b.move(f"eyeBlink{side}", upper, dy=-h)  # the upper lid comes down onto the lower lid
    b.move(f"eyeWide{side}", upper, dy=0.4 * up_h)
    b.move(f"eyeWide{side}", lower, dy=-0.15 * lo_h)
    b.move(f"eyeSquint{side}", lower, dy=0.35 * h)
    b.move(f"eyeSquint{side}", upper, dy=-0.12 * h)
    b.move(f"cheekSquint{side}", lower, dy=0.003)
    ball = np.concatenate([iris, pupil, glint])
    b.move(f"eyeLookIn{side}", ball, dx=-sgn * 0.011 * k)
    b.move(f"eyeLookOut{side}", ball, dx=sgn * 0.011 * k)
    b.move(f"eyeLookUp{side}", ball, dy=0.0065 * k)
    b.move(f"eyeLookUp{side}", upper, dy=0.002)
    b.move(f"eyeLookDown{side}", ball, dy=-0.0065 * k)
    b.move(f"eyeLookDown{side}", upper, dy=-0.0035)
    b.move(f"eyeLookDown{side}", lower, dy=-0.001)

    t = np.linspace(0.0, 1.0, 6)
    bx = sgn * (0.028 + 0.08 * t) * idn.eye_spacing
    by = 0.063 + idn.brow_height + 0.009 * np.sin(np.pi * t**0.8) - 0.004 * t
    th = (0.0085 - 0.0045 * t) * idn.brow_thickness
    rim = np.concatenate([by - th / 2, (by + th / 2)[::-1]])
    brow = b.add(None, _on_face(np.r_[bx, bx[::-1]], rim, 0.004))
    b.poly(f"{name}_brow", group, brow, "brow")
    w_in = np.concatenate([1 - t, t])  # 1 at the inner end, 0 at the outer end
    b.move(f"browDown{side}", brow, dx=-sgn * 0.004 * w_in, dy=-0.011 * (0.5 + 0.5 * w_in))
    b.move("browInnerUp", brow, dy=0.013 * w_in**1.5 + 0.002)
    b.move(f"browOuterUp{side}", brow, dy=0.013 * (1 - w_in) ** 1.2)
    b.move(f"noseSneer{side}", brow, dy=-0.004 * w_in)


def _nose(b: _Builder, idn: Identity) -> None:
    # The bridge starts between the eyes and stands well proud of them, so a turned head's
    # nose covers the inner corner of the far eye.
    top, ln, wd = 0.04, idn.nose_length, idn.nose_width
    half = np.array([[0.008, 0.04], [0.01, 0.01], [0.013, -0.015], [0.017, -0.032],
                     [0.024, -0.044], [0.025, -0.055], [0.016, -0.062]])  # fmt: skip
    outline = np.concatenate([half * [-1, 1], [[0.0, -0.063]], half[::-1]])
    x, y = outline[:, 0] * wd, top + (outline[:, 1] - top) * ln
    rise = np.clip((top - y) / (0.086 * ln), 0.0, 1.0)
    nose = b.add("nose", _on_face(x, y, 0.024 + 0.008 * rise))
    b.poly("nose", "nose", nose, "nose")
    ty = top - 0.086 * ln
    b.add("nose_tip", _on_face(0.0, ty, 0.045))
    highlight = _ring(0.0, ty - 0.001, 0.011 * wd, 0.009, 10, _surface(0.0, ty) + 0.044)
    highlight = b.add(None, highlight)
    b.poly("nose_highlight", "nose", highlight, "nose_tip")
    for side, sgn in _SIDES:
        ny = top - 0.0975 * ln
        ring = _ring(sgn * 0.0095 * wd, ny, 0.0055 * wd, 0.0028, 8, _surface(0.0, ny) + 0.02)
        nostril = b.add(f"{side.lower()}_nostril", ring)
        b.poly(f"{side.lower()}_nostril", "nose", nostril, "nostril")
        ala = nose[(sgn * x > 0) & (y < top - 0.05 * ln)]
        b.move(f"noseSneer{side}", np.concatenate([ala, nostril]), dx=sgn * 0.002, dy=0.008)


def _mouth(b: _Builder, idn: Identity) -> None:
    hw, lt, ym = 0.05 * idn.mouth_width, idn.lip_thickness, _MOUTH_Y
    s = np.array([-0.8, -0.55, -0.28, 0.0, 0.28, 0.55, 0.8])  # x / half width, image left first
    line = ym - 0.001 * s**2
    gap = 0.0012 * (1 - s**2)  # a hairline opening, so a closed mouth still shows its lip line
    t_up = lt * np.sqrt(1 - s**2) * (0.0085 + 0.004 * np.exp(-(((np.abs(s) - 0.32) / 0.2) ** 2)))
    t_lo = lt * 0.0135 * (1 - s**2) ** 0.55
    pout = 0.008 + 0.01 * (1 - s**2)
    corners = b.add(None, _on_face([-hw, hw], [ym - 0.001] * 2, 0.006))
    right, left = corners[:1], corners[1:]
    b.parts["mouth_corner_right"], b.parts["mouth_corner_left"] = right, left
    out_up = b.add("mouth_outer_upper", _on_face(hw * s, line + t_up, pout))
    in_up = b.add("mouth_inner_upper", _on_face(hw * s, line + gap, pout - 0.002))
    in_lo = b.add("mouth_inner_lower", _on_face(hw * s, line - gap, pout - 0.002))
    out_lo = b.add("mouth_outer_lower", _on_face(hw * s, line - t_lo, pout))
    b.parts["mouth_outer"] = np.concatenate([right, out_up, left, out_lo[::-1]])

    # Teeth hang from the upper lip and the tongue's back rests on the lower one; their free
    # edges are placed per frame inside the opening (see _Derived), so the lips, drawn after
    # them, hide them until the mouth opens.
    edge = b.add(None, np.zeros((5, 3)))
    back = b.add(None, np.zeros((5, 3)))
    b.derived += [
        _Derived(edge, in_up[1:-1], in_lo[1:-1], 0.004, 0.6, 0.011),
        _Derived(back, in_lo[1:-1], in_up[1:-1], 0.012, 0.35, 0.008),
    ]
    b.poly("mouth_inner", "mouth", [right, in_up, left, in_lo[::-1]], "mouth_inner")
    b.poly("teeth", "mouth", [in_up[1:-1], edge[::-1]], "teeth")
    b.poly("tongue", "mouth", [in_lo[1:-1], back[::-1]], "tongue")
    b.poly("upper_lip", "mouth", [right, out_up, left, in_up[::-1]], "lips")
    b.poly("lower_lip", "mouth", [right, in_lo, left, out_lo[::-1]], "lips")
    # The tongue's tip lies flat (zero area, not drawn) on the lip line until it comes out.
    ts = np.linspace(0.15, 0.85, 5) * np.pi
    tongue_x = 0.018 * idn.mouth_width * np.concatenate([[-1.0], -np.cos(ts), [1.0]])
    tongue = b.add(None, _on_face(tongue_x, np.full(7, ym - 0.0015), 0.012))
    b.poly("tongue_tip", "mouth", tongue, "tongue")
    b.move("tongueOut", tongue[1:-1], dy=-0.012 - 0.02 * np.sin(ts), dz=0.02 * np.sin(ts))
    b.move("tongueOut", tongue, dx=0.1 * tongue_x)

    upper = np.concatenate([out_up, in_up])
    lower = np.concatenate([in_lo, out_lo])
    both = np.concatenate([s, s])
    every = np.concatenate([corners, upper, lower])
    u = np.concatenate([[-1.0, 1.0], both, both])  # x / half width of every vertex in `every`
    _jaw(b, np.r_[lower, tongue, corners], np.r_[np.ones(len(lower) + len(tongue)), 0.5, 0.5])
    b.move("jawForward", out_lo, dy=-0.004)
    b.move("tongueOut", lower, dy=-0.01)
    b.move("mouthClose", lower, dy=0.012)
    b.move("mouthClose", upper, dy=-0.006, dz=0.003)
    b.move("mouthFunnel", every, dx=-0.25 * hw * u, dz=0.015 * (1 - 0.5 * u**2))
    b.move("mouthFunnel", in_up, dy=0.008 * (1 - s**2))
    b.move("mouthFunnel", in_lo, dy=-0.008 * (1 - s**2))
    b.move("mouthFunnel", out_up, dy=0.004 * (1 - s**2))
    b.move("mouthFunnel", out_lo, dy=-0.004 * (1 - s**2))
    b.move("mouthPucker", every, dx=-0.35 * hw * u, dz=0.02 * (1 - 0.5 * u**2))
    b.move("mouthPucker", out_up, dy=0.002 * (1 - s**2))
    b.move("mouthPucker", out_lo, dy=-0.003 * (1 - s**2))
    b.move("mouthRollLower", out_lo, dy=0.75 * t_lo, dz=-0.006)
    b.move("mouthRollUpper", out_up, dy=-0.75 * t_up, dz=-0.006)
    b.move("mouthShrugLower", lower, dy=0.007, dz=0.006)
    b.move("mouthShrugLower", upper, dy=0.003)
    b.move("mouthShrugUpper", upper, dy=0.006, dz=0.005)
    for side, sgn in _SIDES:
        near = ((1 + sgn * u) / 2) ** 2.5  # 1 at this side's corner, 0 at the other
        half = np.clip((sgn * s + 0.6) / 1.2, 0.0, 1.0)  # this side's half of a contour
        b.move(f"mouth{side}", every, dx=sgn * 0.018)
        b.move(f"mouthSmile{side}", every, sgn * 0.014 * near, 0.024 * near**1.4, -0.006 * near)
        b.move(f"mouthFrown{side}", every, dx=sgn * 0.003 * near, dy=-0.012 * near)
        b.move(f"mouthDimple{side}", every, sgn * 0.008 * near, 0.002 * near, -0.01 * near)
        b.move(f"mouthStretch{side}", every, dx=sgn * 0.014 * near, dy=-0.005 * near)
        b.move(f"mouthStretch{side}", out_up, dy=-0.002 * half)
        b.move(f"mouthStretch{side}", out_lo, dy=0.003 * half)
        b.move(f"mouthLowerDown{side}", lower, dy=-0.012 * np.r_[half, half])
        b.move(f"mouthLowerDown{side}", left if sgn > 0 else right, dy=-0.003)
        b.move(f"mouthUpperUp{side}", upper, dy=0.01 * np.r_[half, half])
        b.move(f"mouthPress{side}", out_up, dy=-0.4 * t_up * half, dz=-0.003)
        b.move(f"mouthPress{side}", out_lo, dy=0.4 * t_lo * half, dz=-0.003)
        b.move(f"mouthPress{side}", in_up, dy=-0.0012 * half * (1 - s**2))
        b.move(f"mouthPress{side}", in_lo, dy=0.0012 * half * (1 - s**2))
        b.move(f"noseSneer{side}", out_up, dy=0.003 * half)


def _fringe(b: _Builder, idn: Identity) -> None:
    sx, sy = idn.face_width, idn.face_height
    # The outer arc stays clear of the face oval so no skin shows above it when the head turns.
    a = np.linspace(np.pi - 0.405, 0.405, 11)
    arc = np.stack([0.172 * np.cos(a) * sx, 0.228 * np.sin(a) * sy], axis=-1)
    hairline = {
        0: [(0.115, 0.135), (0.07, 0.145), (0.02, 0.15), (-0.03, 0.125), (-0.08, 0.114),
            (-0.12, 0.108)],
        1: [(0.12, 0.12), (0.06, 0.15), (0.0, 0.165), (-0.06, 0.15), (-0.12, 0.12)],
        2: [(0.11, 0.118), (0.05, 0.11), (0.0, 0.114), (-0.05, 0.11), (-0.11, 0.118)],
    }[idn.hair_style]  # fmt: skip
    inner = np.asarray(hairline) * [sx, sy]
    pts = np.concatenate([arc, inner])
    b.poly("fringe", "fringe", b.add(None, _on_face(pts[:, 0], pts[:, 1], 0.012)), "hair")


@dataclass(frozen=True)
class _Derived:
    """Vertices ``out`` placed per frame a distance from ``src`` toward ``dst``.

    The distance is ``clip(gain * (d - start), 0, most)`` for the source-destination distance
    ``d``: the teeth's edge below the upper lip and the tongue's back above the lower lip stay
    inside the mouth opening whatever the lips do, and grow only once it is open.
    """

    out: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    start: float
    gain: float
    most: float


@dataclass(frozen=True)
class _Model:
    vertices: np.ndarray  # (V, 3) in camera axes
    basis: np.ndarray  # (52, V * 3)
    body: np.ndarray  # (V,) bool: follows the translation only, not the rotation
    derived: tuple[_Derived, ...]
    parts: dict[str, np.ndarray]
    polys: tuple[_Poly, ...]


_CAMERA_AXES = np.array([1.0, -1.0, -1.0])  # head (y up, z to camera) -> camera (y down, z away)
_BASE_GROUPS = ("hair_back", "shoulders", "neck", "ears", "face", "cheeks")
_SORTED_GROUPS = ("left_eye", "right_eye", "nose", "mouth")
_TOP_GROUPS = ("fringe",)
_GROUPS = _BASE_GROUPS + _SORTED_GROUPS + _TOP_GROUPS


@functools.lru_cache(maxsize=32)
def _model(identity: Identity) -> _Model:
    b = _Builder()
    _head(b, identity)
    for side, sgn in _SIDES:
        _eye(b, identity, side, sgn)
    _nose(b, identity)
    _mouth(b, identity)
    _fringe(b, identity)

    vertices = np.concatenate(b.points)
    basis = np.zeros((NUM_EXPRESSION, len(vertices), 3))
    for k, idx, d in b.moves:
        np.add.at(basis[k], idx, d)
    for child, parent in b.attached:
        basis[:, child] = basis[:, parent]
    body = np.zeros(len(vertices), dtype=bool)
    body[np.concatenate(b.body)] = True
    return _Model(
        vertices=_frozen(vertices * _CAMERA_AXES),
        basis=_frozen((basis * _CAMERA_AXES).reshape(NUM_EXPRESSION, -1)),
        body=_frozen(body),
        derived=tuple(b.derived),
        parts={k: _frozen(v.astype(np.intp)) for k, v in sorted(b.parts.items())},
        # A stable sort keeps each group's layers in the order they were added.
        polys=tuple(sorted(b.polys, key=lambda p: _GROUPS.index(p.group))),
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


def _colours(idn: Identity) -> dict[str, Colour]:
    skin = idn.skin
    return {
        "skin": skin,
        "hair": idn.hair,
        "shirt": idn.shirt,
        "neck": _mix(skin, (70, 40, 30), 0.2),
        "ear": _mix(skin, (110, 50, 40), 0.1),
        "cheek": _mix(skin, (232, 96, 106), 0.13),
        "eye_white": (242, 240, 235),
        "iris": idn.iris,
        "pupil": (18, 14, 14),
        "glint": (255, 255, 255),
        "lash": (36, 26, 26),
        "brow": _mix(idn.hair, (20, 14, 10), 0.3),
        "nose": _mix(skin, (120, 60, 50), 0.12),
        "nose_tip": _mix(skin, (255, 255, 255), 0.1),
        "nostril": _mix(skin, (40, 14, 14), 0.65),
        "lips": idn.lips,
        "mouth_inner": (72, 22, 30),
        "teeth": (238, 234, 222),
        "tongue": (198, 92, 100),
    }


# --- Camera ----------------------------------------------------------------------------------


def _size(size) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int | np.integer) and v >= 8 for v in hw):
        raise ValueError(f"size must be an int >= 8 or an (H, W) pair of them, got {size!r}")
    return int(hw[0]), int(hw[1])


def _check_coeffs(coeffs) -> tuple[np.ndarray, bool]:
    """``(T, 58)`` float64 and whether the input was a single frame."""
    x = np.asarray(coeffs, dtype=np.float64)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != NUM_COEFFS or len(x) == 0:
        raise ValueError(
            f"coefficients must have shape ({NUM_COEFFS},) or (T, {NUM_COEFFS}) with T >= 1, "
            f"got {np.shape(coeffs)}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        t, k = np.argwhere(bad)[0]
        raise ValueError(
            f"coefficients contain NaN or infinite values (first: frame {t}, coefficient {k})"
        )
    near = x[:, index("tz")] < MIN_DISTANCE
    if near.any():
        t = int(np.argmax(near))
        raise ValueError(
            f"camera distance tz must be at least {MIN_DISTANCE}, got {x[t, index('tz')]:.3g} "
            f"at frame {t}"
        )
    return x, single


# --- Renderer --------------------------------------------------------------------------------


class FaceRenderer:
    """Renders 58-d coefficient frames of one identity at one image size.

    Parameters
    ----------
    size : int or (H, W)
        Output image size; an int gives a square image.
    identity : Identity, optional
        Defaults to :meth:`Identity.default`.
    focal : float, optional
        Focal length in pixels; defaults to ``FOCAL_SCALE * min(H, W)``.
    background : bool
        Draw the identity's vertical gradient behind the person; False leaves it black.
    """

    def __init__(
        self,
        size=DEFAULT_SIZE,
        identity: Identity | None = None,
        focal=None,
        background: bool = True,
    ):
        self.size = _size(size)
        self.identity = Identity.default() if identity is None else identity
        if not isinstance(self.identity, Identity):
            raise TypeError(f"identity must be an Identity, got {type(identity).__name__}")
        h, w = self.size
        self.focal = float(FOCAL_SCALE * min(h, w) if focal is None else focal)
        if not np.isfinite(self.focal) or self.focal <= 0:
            raise ValueError(f"focal must be a positive number of pixels, got {focal!r}")
        self.center = ((w - 1) / 2.0, (h - 1) / 2.0)  # pixel centres sit on integer coordinates
        self._model = _model(self.identity)
        colours = _colours(self.identity)
        polys = self._model.polys
        self._colours = [tuple(float(c) for c in colours[p.colour]) for p in polys]
        self._groups = {g: [i for i, p in enumerate(polys) if p.group == g] for g in _GROUPS}
        self._first = [i for g in _BASE_GROUPS for i in self._groups[g]]
        self._last = [i for g in _TOP_GROUPS for i in self._groups[g]]
        n = len(self._model.vertices)
        self._depth_weights = np.zeros((n, len(_SORTED_GROUPS)))
        for j, g in enumerate(_SORTED_GROUPS):
            idx = np.unique(np.concatenate([polys[i].idx for i in self._groups[g]]))
            self._depth_weights[idx, j] = 1.0 / len(idx)
        self._background = np.zeros((h, w, 3), dtype=np.uint8)
        if background:
            top, bottom = (np.asarray(c, dtype=float) for c in self.identity.background)
            ramp = np.linspace(0.0, 1.0, h)[:, None, None]
            self._background[:] = np.rint(top + (bottom - top) * ramp).astype(np.uint8)
        # Orient every polygon by its signed area with the mouth open and the tongue out, a pose
        # in which none of them is degenerate; a flip later means it faces away or has closed.
        reference = np.zeros(NUM_COEFFS)
        reference[[index("jawOpen"), index("tongueOut"), index("tz")]] = 1.0, 1.0, NEUTRAL_DISTANCE
        area = self._areas(self._project(self._camera(reference[None])))
        if np.any(np.abs(area) < 1e-3):
            raise RuntimeError("degenerate template polygon in the reference pose")
        self._orientation = np.sign(area[0])

    @property
    def backdrop(self) -> np.ndarray:
        """``(H, W, 3)`` uint8: the empty scene every frame is drawn on (the identity's
        gradient, or black), a copy."""
        return self._background.copy()

    @property
    def part_indices(self) -> dict[str, np.ndarray]:
        """Vertex indices of every named part (``left_eye_upper``, ``mouth_inner``, ...).

        Left and right are the subject's; lid and lip contours run from the inner eye corner
        outward and from the image's left to its right. ``face_oval``, ``*_brow`` and
        ``nose_tip`` are what :meth:`face_box` and the pose tests use.
        """
        return dict(self._model.parts)

    def landmarks(self, coeffs) -> np.ndarray:
        """Projected vertices in pixels: ``(V, 2)`` for one frame, ``(T, V, 2)`` for a clip."""
        x, single = _check_coeffs(coeffs)
        points = self._project(self._camera(x))
        return points[0] if single else points

    def face_box(self, coeffs) -> np.ndarray:
        """``(x, y, w, h)`` of the projected face oval and brows: ``(4,)`` or ``(T, 4)``.

        The box an ideal face detector would give, for cropping; hair and ears are left out.
        """
        x, single = _check_coeffs(coeffs)
        parts = self._model.parts
        face = np.concatenate([parts["face_oval"], parts["left_brow"], parts["right_brow"]])
        points = self._project(self._camera(x))[:, face]
        lo, hi = points.min(axis=1), points.max(axis=1)
        box = np.concatenate([lo, hi - lo], axis=-1)
        return box[0] if single else box

    def draw_order(self, coeffs) -> list[list[str]]:
        """Per frame, the names of the polygons drawn, back to front (hidden ones left out)."""
        x, _ = _check_coeffs(coeffs)
        cam = self._camera(x)
        names = [p.name for p in self._model.polys]
        return [
            [names[i] for i in ids] for ids in self._draw_order(cam[..., 2], self._project(cam))
        ]

    def render(self, coeffs, progress: Callable[[Iterable], Iterable] | None = None) -> np.ndarray:
        """uint8 RGB frames: ``(H, W, 3)`` for ``(58,)`` coefficients, ``(T, H, W, 3)`` for
        ``(T, 58)``. ``progress`` optionally wraps the frame loop (e.g. ``tqdm``)."""
        x, single = _check_coeffs(coeffs)
        cam = self._camera(x)
        points = self._project(cam)
        frames = self._draw(points, self._draw_order(cam[..., 2], points), progress)
        return frames[0] if single else frames

    # The pipeline is vectorised over the whole clip; only _draw loops over frames.

    def _camera(self, x: np.ndarray) -> np.ndarray:
        """``(T, 58)`` -> ``(T, V, 3)`` vertices in camera coordinates."""
        m = self._model
        verts = (x[:, EXPRESSION] @ m.basis).reshape(len(x), -1, 3)
        verts += m.vertices
        for d in m.derived:
            verts[:, d.out] = self._derive(verts, d)
        cam = verts @ kinematics.rotations(x[:, ROTATION]).transpose(0, 2, 1)
        cam[:, m.body] = verts[:, m.body]
        cam += x[:, None, TRANSLATION]
        return cam

    @staticmethod
    def _derive(verts: np.ndarray, d: _Derived) -> np.ndarray:
        a = verts[:, d.src]
        span = verts[:, d.dst] - a
        dist = np.linalg.norm(span, axis=-1, keepdims=True)
        move = np.clip(d.gain * (dist - d.start), 0.0, d.most)
        return a + span * (move / np.maximum(dist, 1e-9))

    def _project(self, cam: np.ndarray) -> np.ndarray:
        xy = self.focal * cam[..., :2] / cam[..., 2:3]
        xy += self.center
        return np.clip(xy, -_FAR, _FAR, out=xy)

    def _areas(self, points: np.ndarray) -> np.ndarray:
        """Signed projected area of every polygon: ``(T, P)`` square pixels."""
        out = np.empty((len(points), len(self._model.polys)))
        for j, p in enumerate(self._model.polys):
            x, y = points[:, p.idx, 0], points[:, p.idx, 1]
            out[:, j] = 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(1)
        return out

    def _draw_order(self, depth: np.ndarray, points: np.ndarray) -> list[list[int]]:
        """Per frame, the polygons to draw, back to front, without the invisible ones."""
        visible = (self._areas(points) * self._orientation > _MIN_AREA).tolist()
        far_first = np.argsort(-(depth @ self._depth_weights), axis=1, kind="stable").tolist()
        groups = [self._groups[g] for g in _SORTED_GROUPS]
        order = []
        for t, ranks in enumerate(far_first):
            ids = self._first + [i for r in ranks for i in groups[r]] + self._last
            order.append([i for i in ids if visible[t][i]])
        return order

    def _draw(self, points: np.ndarray, order: list[list[int]], progress) -> np.ndarray:
        fixed = np.rint(points * (1 << _SHIFT)).astype(np.int32)
        polys = [np.ascontiguousarray(fixed[:, p.idx]) for p in self._model.polys]
        frames = np.empty((len(points), *self._background.shape), dtype=np.uint8)
        frames[:] = self._background
        steps = range(len(points)) if progress is None else progress(range(len(points)))
        colours = self._colours
        for t in steps:
            img = frames[t]
            for i in order[t]:
                cv2.fillPoly(img, [polys[i][t]], colours[i], cv2.LINE_AA, _SHIFT)
        return frames


def render_video(
    coeffs,
    size=DEFAULT_SIZE,
    identity: Identity | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> np.ndarray:
    """Render a ``(T, 58)`` clip to ``(T, H, W, 3)`` uint8 frames in one call."""
    x = np.asarray(coeffs)
    if x.ndim != 2:
        raise ValueError(f"render_video expects a (T, {NUM_COEFFS}) clip, got shape {x.shape}")
    return FaceRenderer(size, identity).render(x, progress=progress)
