"""Deterministic procedural images: the project's stand-in for photographs.

A class is a combination of three primitives: a shape, a surface texture and a
hue (`ClassSpec`). An image of a class is that object drawn under nuisances
(pose, scale, position, viewpoint squash, background, clutter, lighting, blur,
noise) whose distribution is a `Shift`. Four shifts are provided: `NATURAL`
(training), `V2_SHIFT` (a mild re-collection), `VIDEO_SHIFT` (the video sets'
scenes, as hard as V2), `OBJECTNET_SHIFT` (unusual pose, viewpoint and
background) and `HARD_SHIFT` (smallish objects in clutter, the pool for
adversarial filtering).

Every random choice is drawn from the `numpy.random.Generator` passed in, in a
fixed order, so the same generator state always yields the same pixels; no
global random state is read or written.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

# Bump whenever a change alters the pixels produced for a given seed: writers
# record it in their completion markers so stale cached folders are noticed.
GENERATOR_VERSION = 2  # 2: HARD_SHIFT larger objects, fewer distractors; OBJECTNET_SHIFT plain backgrounds; VIDEO_SHIFT

SHAPES: tuple[str, ...] = (
    "disc", "square", "triangle", "star", "cross", "arrow", "crescent", "hourglass",
)
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "dots", "rings")
N_HUES = 12  # 30 degrees apart: separable by colour, yet neighbours are confusable under jitter
FAMILIES: tuple[str, ...] = ("upstream", "downstream")

_TEXTURE_PERIOD = 0.5  # in object units (object radius = 1): about four periods across an object


@dataclass(frozen=True)
class ClassSpec:
    """What defines a class: a shape, a texture and a hue.

    `shape` is one of `SHAPES`, `texture` one of `TEXTURES`, `hue` an index
    0..N_HUES-1 into an evenly spaced hue circle (hue `hue / N_HUES` turns).
    Saturation and brightness are nuisances, not part of the class.
    """

    shape: str
    texture: str
    hue: int

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {SHAPES}")
        if self.texture not in TEXTURES:
            raise ValueError(f"unknown texture {self.texture!r}; expected one of {TEXTURES}")
        if not 0 <= self.hue < N_HUES:
            raise ValueError(f"hue index {self.hue} outside 0..{N_HUES - 1}")


@dataclass(frozen=True)
class Shift:
    """A nuisance distribution; every range is (low, high), sampled uniformly.

    Geometry is in fractions of the image side, angles in degrees. Photometric
    values act on 0..255 pixel values. `backgrounds` is sampled uniformly from
    {"plain", "gradient", "blobs", "stripes", "checker"}; "stripes" and
    "checker" repeat object textures and are the unusual backgrounds.
    """

    name: str
    rotation: tuple[float, float]  # object pose in degrees
    scale: tuple[float, float]  # object radius / image side
    offset: float  # max |centre offset| per axis / image side
    squash: tuple[float, float]  # viewpoint foreshortening along a random axis (1 = none)
    backgrounds: tuple[str, ...]
    background_saturation: tuple[float, float]
    background_value: tuple[float, float]
    clutter: tuple[int, int]  # number of distractor shapes, inclusive
    clutter_scale: tuple[float, float]  # distractor radius / image side
    clutter_front: float  # probability a distractor is drawn over the object (occlusion)
    hue_jitter: float  # std of the object's hue shift, in turns (hues are 1/12 turn apart)
    saturation: tuple[float, float]
    value: tuple[float, float]
    brightness: tuple[float, float]  # global gain
    contrast: tuple[float, float]  # gain around the image mean
    blur_prob: float
    blur_radius: tuple[float, float]  # Gaussian blur radius in pixels at 64 px, scaled with size
    noise: float  # amplitude of uniform per-pixel noise

    def __post_init__(self) -> None:
        bad = set(self.backgrounds) - set(_BACKGROUNDS)
        if bad or not self.backgrounds:
            raise ValueError(f"unknown backgrounds {sorted(bad)}; expected some of {_BACKGROUNDS}")
        if not 0 <= self.clutter[0] <= self.clutter[1]:
            raise ValueError(f"clutter range {self.clutter} must be 0 <= low <= high")


_BACKGROUNDS = ("plain", "gradient", "blobs", "stripes", "checker")

NATURAL = Shift(
    name="natural",
    rotation=(-30.0, 30.0),
    scale=(0.26, 0.38),
    offset=0.10,
    squash=(0.8, 1.0),
    backgrounds=("plain", "gradient", "blobs"),
    background_saturation=(0.0, 0.3),
    background_value=(0.25, 0.9),
    clutter=(0, 2),
    clutter_scale=(0.07, 0.13),
    clutter_front=0.2,
    hue_jitter=0.012,
    saturation=(0.6, 0.95),
    value=(0.6, 0.95),
    brightness=(0.85, 1.15),
    contrast=(0.85, 1.15),
    blur_prob=0.1,
    blur_radius=(0.3, 0.8),
    noise=6.0,
)

# ImageNet-V2-like: same classes and kinds of scene, every statistic nudged a
# little towards harder (smaller, more rotated, duller, a little more clutter).
V2_SHIFT = replace(
    NATURAL,
    name="v2",
    rotation=(-40.0, 40.0),
    scale=(0.23, 0.36),
    offset=0.13,
    squash=(0.75, 1.0),
    background_saturation=(0.0, 0.4),
    clutter=(0, 3),
    hue_jitter=0.02,
    saturation=(0.5, 0.9),
    value=(0.5, 0.9),
    brightness=(0.8, 1.15),
    contrast=(0.75, 1.1),
    blur_prob=0.2,
    noise=8.0,
)

# Video frames (ImageNet-Vid-Robust, YouTube-BB-Robust): a re-collection as hard as
# ImageNet-V2's, so that anchor error lands near BiT-M's 16-37 % (imagenet-testbed)
# instead of near clean error; `render_sequence` adds the frame-to-frame perturbations.
VIDEO_SHIFT = replace(V2_SHIFT, name="video")

# ObjectNet-like: objects on their side, strong foreshortening, off-centre and partly
# cropped objects on busy backgrounds. The backgrounds avoid the stripes and
# checkers that repeat object textures: with them the class cues (texture, hue)
# were gone and no amount of pre-training moved the error (generator version 1).
OBJECTNET_SHIFT = replace(
    NATURAL,
    name="objectnet",
    rotation=(-90.0, 90.0),
    scale=(0.2, 0.36),
    offset=0.22,
    squash=(0.45, 0.8),
    backgrounds=("gradient", "blobs"),
    background_saturation=(0.2, 0.6),
    background_value=(0.3, 0.9),
    clutter=(1, 3),
    hue_jitter=0.025,
    saturation=(0.45, 0.95),
    value=(0.45, 0.95),
    brightness=(0.65, 1.25),
    contrast=(0.6, 1.1),
    blur_prob=0.3,
    noise=10.0,
)

# ImageNet-A pool: smallish, turned objects among distractors, often occluded;
# adversarial filtering then keeps the examples a reference model fails. Objects
# stay large enough to resolve at 32 px (in version 1, 13-22 % of the side among
# 3-6 distractors, every model sat near chance whatever its pre-training).
HARD_SHIFT = replace(
    NATURAL,
    name="hard",
    rotation=(-90.0, 90.0),
    scale=(0.2, 0.3),
    offset=0.2,
    squash=(0.6, 1.0),
    backgrounds=_BACKGROUNDS,
    background_saturation=(0.1, 0.7),
    clutter=(1, 4),
    clutter_scale=(0.08, 0.16),
    clutter_front=0.4,
    hue_jitter=0.025,
    saturation=(0.45, 0.95),
    value=(0.45, 0.95),
    brightness=(0.7, 1.2),
    contrast=(0.65, 1.1),
    blur_prob=0.25,
    noise=10.0,
)


# --------------------------------------------------------------------------- classes


@lru_cache(maxsize=None)
def _family_order(family: str) -> tuple[ClassSpec, ...]:
    """All specs of a family, ordered so that every prefix uses the primitives evenly."""
    parity = FAMILIES.index(family)
    # A checkerboard split of the (shape, texture, hue) grid: both families use
    # every shape, texture and hue, but never the same combination.
    combos = [
        (s, t, h)
        for s in range(len(SHAPES))
        for t in range(len(TEXTURES))
        for h in range(N_HUES)
        if (s + t + h) % 2 == parity
    ]
    tiebreak = np.random.default_rng(zlib.crc32(family.encode())).permutation(len(combos))
    counts = [np.zeros(len(SHAPES)), np.zeros(len(TEXTURES)), np.zeros(N_HUES)]
    pair_counts = np.zeros((len(SHAPES), len(TEXTURES)))
    remaining = list(range(len(combos)))
    order: list[ClassSpec] = []
    while remaining:
        # Greedy: least-used primitives first, so a small class list (8 classes
        # in a test, 100 downstream) still spans shapes, textures and hues.
        best = min(
            remaining,
            key=lambda i: (
                counts[0][combos[i][0]] + counts[1][combos[i][1]] + counts[2][combos[i][2]],
                pair_counts[combos[i][0], combos[i][1]],
                tiebreak[i],
            ),
        )
        remaining.remove(best)
        s, t, h = combos[best]
        counts[0][s] += 1
        counts[1][t] += 1
        counts[2][h] += 1
        pair_counts[s, t] += 1
        order.append(ClassSpec(SHAPES[s], TEXTURES[t], h))
    return tuple(order)


def family_capacity(family: str) -> int:
    """How many distinct classes `class_specs` can give `family`."""
    _check_family(family)
    return len(_family_order(family))


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def class_specs(wnids: Sequence[str], family: str) -> dict[str, ClassSpec]:
    """Assign a `ClassSpec` to each wnid, by position in the list and family name.

    Class k of `wnids` gets the k-th spec of `family` ("upstream" or
    "downstream"), whatever the wnid is, so a list's prefix keeps its specs.
    Specs are distinct within a family; the two families share every shape,
    texture and hue but no (shape, texture, hue) combination. Each family has
    `family_capacity(family)` (240) specs; raises ValueError beyond that or on
    duplicate wnids. Returns a dict in the order of `wnids`.
    """
    _check_family(family)
    wnids = list(wnids)
    if len(set(wnids)) != len(wnids):
        raise ValueError("wnids contain duplicates")
    order = _family_order(family)
    if len(wnids) > len(order):
        raise ValueError(f"{len(wnids)} classes requested; family {family!r} has {len(order)}")
    return {w: order[k] for k, w in enumerate(wnids)}


# --------------------------------------------------------------------------- geometry


def _polygon_arc(cx: float, cy: float, r: float, a0: float, a1: float, n: int) -> np.ndarray:
    a = np.linspace(a0, a1, n)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _crescent() -> np.ndarray:
    # Outer unit circle minus a circle of radius 0.8 centred at (0.45, 0).
    ox, r_in = 0.45, 0.8
    x = (1 + ox**2 - r_in**2) / (2 * ox)
    y = math.sqrt(1 - x**2)
    a_out = math.atan2(y, x)
    a_in = math.atan2(y, x - ox)
    outer = _polygon_arc(0, 0, 1.0, a_out, 2 * math.pi - a_out, 18)
    inner = _polygon_arc(ox, 0, r_in, 2 * math.pi - a_in, a_in, 14)
    return np.concatenate([outer, inner]) + np.array([0.2, 0.0])  # roughly centred


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = -math.pi / 2 + np.arange(2 * points) * math.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


# Outlines in object units (radius about 1, y pointing down as in images).
_OUTLINES: dict[str, np.ndarray] = {
    "disc": _polygon_arc(0, 0, 0.9, 0, 2 * math.pi, 25)[:-1],
    "square": np.array([[-0.78, -0.78], [0.78, -0.78], [0.78, 0.78], [-0.78, 0.78]]),
    "triangle": np.array([[0.0, -1.0], [0.9, 0.6], [-0.9, 0.6]]),
    "star": _star(),
    "cross": np.array(
        [[-0.3, -0.95], [0.3, -0.95], [0.3, -0.3], [0.95, -0.3], [0.95, 0.3], [0.3, 0.3],
         [0.3, 0.95], [-0.3, 0.95], [-0.3, 0.3], [-0.95, 0.3], [-0.95, -0.3], [-0.3, -0.3]]
    ),
    "arrow": np.array(
        [[-1.0, -0.28], [0.15, -0.28], [0.15, -0.75], [1.0, 0.0], [0.15, 0.75], [0.15, 0.28],
         [-1.0, 0.28]]
    ),
    "crescent": _crescent(),
    "hourglass": np.array([[-0.8, -0.95], [0.8, -0.95], [0.12, 0.0], [0.8, 0.95], [-0.8, 0.95],
                           [-0.12, 0.0]]),
}


Matrix = tuple[float, float, float, float]  # row-major 2x2 (a, b, c, d) = [[a, b], [c, d]]


def _mul(m: Matrix, n: Matrix) -> Matrix:
    # Plain-float 2x2 algebra: numpy's per-call overhead dominates at this size.
    a, b, c, d = m
    e, f, g, h = n
    return (a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h)


def _rot(deg: float, scale: float = 1.0) -> Matrix:
    a = math.radians(deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return (c, -s, s, c)


def _pose_matrix(radius: float, rotation: float, squash: float, squash_axis: float) -> Matrix:
    """Object units -> pixel offsets: rotate the object, then foreshorten along a view axis."""
    # R(axis) diag(1, squash) R(-axis) = I + (squash - 1) n n^T, n the rotated y axis.
    a = math.radians(squash_axis)
    s, c, k = math.sin(a), math.cos(a), squash - 1.0
    view = (1.0 + k * s * s, -k * s * c, -k * s * c, 1.0 + k * c * c)
    return _mul(view, _rot(rotation, radius))


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return r * 255.0, g * 255.0, b * 255.0


def _lerp(lo_hi: tuple[float, float], t: float) -> float:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * t


# Textures are pre-rendered once as 'L' tiles in object units and mapped onto
# each object with one affine resample: a per-pixel numpy evaluation costs
# several times more at these sizes.
_TILE_PPU = 64  # tile pixels per object unit
_TILE_EXTENT = 1.3  # tile covers object units [-1.3, 1.3]: every outline fits


@lru_cache(maxsize=None)
def _texture_tile(texture: str) -> Image.Image:
    """0/255 pattern of `texture` in object units (255 = the dark shade)."""
    n = int(2 * _TILE_EXTENT * _TILE_PPU)
    c = (np.arange(n, dtype=np.float64) + 0.5) / _TILE_PPU - _TILE_EXTENT
    u, v = np.meshgrid(c / _TEXTURE_PERIOD, c / _TEXTURE_PERIOD)  # (n, n), in texture periods
    if texture == "stripes":
        t = np.floor(u) % 2 == 1
    elif texture == "checker":
        t = (np.floor(u) + np.floor(v)) % 2 == 1
    elif texture == "dots":
        fu, fv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
        t = fu * fu + fv * fv < 0.09
    elif texture == "rings":
        t = np.floor(np.hypot(u, v) * 1.25) % 2 == 1
    else:
        raise ValueError(f"texture {texture!r} has no tile")
    return Image.fromarray(t.astype(np.uint8) * 255, "L")


@lru_cache(maxsize=16)
def _noise_bank(size: int, amplitude: int) -> Image.Image:
    """A (2 size)^2 field of luminance noise in 0..2*amplitude, fixed once.

    Each image takes a crop at an offset drawn from its generator: ~size^2
    distinct fields, deterministic, and ~5x cheaper than fresh noise.
    """
    rng = np.random.default_rng(0x5EED)
    field = rng.integers(0, 2 * amplitude + 1, size=(2 * size, 2 * size), dtype=np.uint8)
    return Image.fromarray(np.repeat(field[..., None], 3, axis=2), "RGB")


# --------------------------------------------------------------------------- scenes
# Scalar draws from a Generator cost microseconds each, so each step draws one
# vector of uniforms and maps its entries; the draw order is part of the output.
# Colours stay unclipped floats until drawing, where lighting (gain, offset) is
# applied per colour: the scene is piecewise constant, so this equals a
# per-pixel brightness/contrast at no per-pixel cost.

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class _Item:
    """One textured shape placed in the image."""

    shape: str
    texture: str
    colour: Colour  # the lit texture colour, 0..255
    shade: Colour  # the dark texture colour
    centre: tuple[float, float]  # pixels, x then y
    matrix: Matrix  # object units -> pixel offsets


@dataclass(frozen=True)
class _Background:
    kind: str
    colours: tuple[Colour, ...]
    angle: float = 0.0  # radians, stripes/checker only
    period: float = 1.0  # pixels, stripes/checker only


@dataclass(frozen=True)
class _Scene:
    background: _Background
    behind: tuple[_Item, ...]
    obj: _Item
    front: tuple[_Item, ...]
    brightness: float
    contrast: float
    blur: float  # defocus radius in pixels, 0 = none
    noise: int  # noise amplitude, 0..255 units


def _sample_background(rng: np.random.Generator, shift: Shift, size: int) -> _Background:
    kind = shift.backgrounds[int(rng.integers(len(shift.backgrounds)))]
    n_colours = {"plain": 1, "gradient": 4, "blobs": 16}.get(kind, 2)
    colours = tuple(
        _hsv(h, _lerp(shift.background_saturation, s), _lerp(shift.background_value, v))
        for h, s, v in rng.random((n_colours, 3)).tolist()
    )
    if kind in ("stripes", "checker"):
        angle, period = rng.random(2).tolist()
        return _Background(kind, colours, angle * 2 * math.pi, (0.08 + 0.12 * period) * size)
    return _Background(kind, colours)


def _draw_background(bg: _Background, size: int, light) -> Image.Image:
    colours = [light(c) for c in bg.colours]
    if bg.kind == "plain":
        return Image.new("RGB", (size, size), colours[0])
    if bg.kind in ("gradient", "blobs"):
        # Smooth colour fields: a 2x2 (a gradient) or 4x4 grid of colours, upsampled.
        side = math.isqrt(len(colours))
        grid = Image.frombytes("RGB", (side, side), bytes(v for c in colours for v in c))
        return grid.resize((size, size), Image.BILINEAR)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    c, s = math.cos(bg.angle) / bg.period, math.sin(bg.angle) / bg.period
    t = np.floor(xs * c + ys * s).astype(np.int64)
    if bg.kind == "checker":
        t += np.floor(ys * c - xs * s).astype(np.int64)
    img = Image.new("RGB", (size, size), colours[0])
    img.paste(colours[1], (0, 0, size, size), Image.fromarray(((t & 1) * 255).astype(np.uint8), "L"))
    return img


def _make_item(
    rng: np.random.Generator, shape: str, texture: str, hue: float, size: int, shift: Shift,
    radius_frac: tuple[float, float], offset: float,
) -> _Item:
    s, v, r, rot, sq, axis, cx, cy = rng.random(8).tolist()
    s, v = _lerp(shift.saturation, s), _lerp(shift.value, v)
    matrix = _pose_matrix(
        _lerp(radius_frac, r) * size, _lerp(shift.rotation, rot), _lerp(shift.squash, sq), axis * 180
    )
    centre = (size * (0.5 + offset * (2 * cx - 1)), size * (0.5 + offset * (2 * cy - 1)))
    # The shade keeps the hue and darkens: a texture never changes the class colour.
    return _Item(shape, texture, _hsv(hue, s, v), _hsv(hue, s * 0.7, v * 0.45), centre, matrix)


def _sample_scene(spec: ClassSpec, rng: np.random.Generator, size: int, shift: Shift) -> _Scene:
    background = _sample_background(rng, shift, size)
    hue = spec.hue / N_HUES + shift.hue_jitter * float(rng.standard_normal())
    obj = _make_item(rng, spec.shape, spec.texture, hue, size, shift, shift.scale, shift.offset)
    behind, front = [], []
    n_clutter = int(rng.integers(shift.clutter[0], shift.clutter[1] + 1))
    for _ in range(n_clutter):
        # Distractors borrow other classes' primitives: any shape but the
        # object's, any palette hue but the object's, any texture.
        ds, dh, dt = rng.integers([len(SHAPES) - 1, N_HUES - 1, len(TEXTURES)]).tolist()
        jitter, is_front = float(rng.standard_normal()), float(rng.random())
        shape = SHAPES[(SHAPES.index(spec.shape) + 1 + ds) % len(SHAPES)]
        d_hue = ((spec.hue + 1 + dh) % N_HUES) / N_HUES + shift.hue_jitter * jitter
        item = _make_item(rng, shape, TEXTURES[dt], d_hue, size, shift, shift.clutter_scale, 0.5)
        (front if is_front < shift.clutter_front else behind).append(item)
    brightness, contrast, blur_on, blur = rng.random(4).tolist()
    return _Scene(
        background=background, behind=tuple(behind), obj=obj, front=tuple(front),
        brightness=_lerp(shift.brightness, brightness), contrast=_lerp(shift.contrast, contrast),
        blur=_lerp(shift.blur_radius, blur) * size / 64 if blur_on < shift.blur_prob else 0.0,
        noise=int(round(shift.noise)),
    )


_SUPERSAMPLE = 2  # masks are drawn at 2x and box-filtered: anti-aliased edges at little cost


def _paint(img: Image.Image, item: _Item, light) -> None:
    """Composite `item` into `img` in place, working over its bounding box only."""
    size = img.size[0]
    a, b, c, d = item.matrix
    cx, cy = item.centre
    outline = _OUTLINES[item.shape] @ np.array([[a, c], [b, d]]) + (cx, cy)  # (V, 2) pixels
    lo, hi = outline.min(axis=0).tolist(), outline.max(axis=0).tolist()
    x0, y0 = max(math.floor(lo[0]), 0), max(math.floor(lo[1]), 0)
    x1, y1 = min(math.ceil(hi[0]), size), min(math.ceil(hi[1]), size)
    if x1 <= x0 or y1 <= y0:
        return
    k = _SUPERSAMPLE
    mask = Image.new("L", ((x1 - x0) * k, (y1 - y0) * k), 0)
    ImageDraw.Draw(mask).polygon(((outline - (x0, y0)) * k).ravel().tolist(), fill=255)
    mask = mask.reduce(k)
    box = (x0, y0, x1, y1)
    img.paste(light(item.colour), box, mask)
    if item.texture == "solid":
        return
    # Texture lives in object coordinates: it turns, scales and squashes with the
    # object. Bbox pixel centre (x + 0.5, y + 0.5) -> tile (inv @ (p - centre) + E) * PPU.
    f = _TILE_PPU / (a * d - b * c)
    ia, ib, ic, id_ = d * f, -b * f, -c * f, a * f  # PPU * matrix^-1
    dx, dy, e = x0 - cx, y0 - cy, _TILE_EXTENT * _TILE_PPU
    coeffs = (ia, ib, ia * dx + ib * dy + e, ic, id_, ic * dx + id_ * dy + e)
    pattern = _texture_tile(item.texture).transform((x1 - x0, y1 - y0), Image.AFFINE, coeffs, Image.NEAREST)
    img.paste(light(item.shade), box, ImageChops.multiply(mask, pattern))


def _draw(scene: _Scene, rng: np.random.Generator, size: int) -> Image.Image:
    """Render a scene; draws the noise crop offset from `rng`."""
    # Contrast about mid-grey, then brightness, applied to colours (see above).
    gain = scene.brightness * scene.contrast
    offset = scene.brightness * 128.0 * (1.0 - scene.contrast) + 0.5

    def light(c: Colour) -> tuple[int, int, int]:
        return tuple(min(255, max(0, int(gain * x + offset))) for x in c)

    img = _draw_background(scene.background, size, light)
    for item in (*scene.behind, scene.obj, *scene.front):
        _paint(img, item, light)
    if scene.noise > 0:
        ox, oy = rng.integers(0, size, 2).tolist()
        noise = _noise_bank(size, scene.noise).crop((ox, oy, ox + size, oy + size))
        img = ImageChops.subtract(img, noise, 1.0, scene.noise)  # img + U{-a..a}, clipped
    if scene.blur > 0:
        # Defocus by down- and up-sampling: PIL's GaussianBlur costs ~30x more at 64 px.
        small = max(2, round(size / (1.0 + scene.blur)))
        img = img.resize((small, small), Image.BOX).resize((size, size), Image.BILINEAR)
    return img


def render(spec: ClassSpec, rng: np.random.Generator, size: int = 64, shift: Shift = NATURAL) -> Image.Image:
    """Draw one image of class `spec` under nuisance distribution `shift`.

    Returns an RGB `size` x `size` PIL image. All randomness comes from `rng`
    (advanced in place): equal generator states give identical pixels.
    """
    if size < 8:
        raise ValueError(f"size {size} too small (need >= 8)")
    return _draw(_sample_scene(spec, rng, size, shift), rng, size)


def _moved(item: _Item, dx: Sequence[float], rot: float, scale: float) -> _Item:
    centre = (item.centre[0] + dx[0], item.centre[1] + dx[1])
    return replace(item, centre=centre, matrix=_mul(_rot(rot, scale), item.matrix))


def render_sequence(
    spec: ClassSpec, rng: np.random.Generator, n_frames: int, size: int = 64, shift: Shift = NATURAL
) -> list[Image.Image]:
    """Draw `n_frames` neighbouring "video frames" of one scene of class `spec`.

    Frame 0 is the anchor and is pixel-identical to what `render(spec, rng,
    size, shift)` would return from the same generator state. Later frames
    follow a random walk away from the anchor (object and distractors drift
    about a pixel, turn a few degrees and zoom a few percent per frame), each
    with its own brightness and focus; about one frame in six is a "bad
    frame" (strong defocus, a lighting dip or a jump of the object) so that a
    classifier right on the anchor is sometimes wrong on a neighbour.
    """
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    if size < 8:
        raise ValueError(f"size {size} too small (need >= 8)")
    anchor = _sample_scene(spec, rng, size, shift)
    frames = [_draw(anchor, rng, size)]
    px = size / 64  # perturbations are specified at 64 px
    items = (anchor.obj, *anchor.behind, *anchor.front)
    n_behind = len(anchor.behind)
    offsets = np.zeros((len(items), 2))
    rots = np.zeros(len(items))
    log_scales = np.zeros(len(items))
    for _ in range(1, n_frames):
        walk = rng.standard_normal((len(items), 4))
        offsets += 0.8 * px * walk[:, :2]
        rots += 3.0 * walk[:, 2]
        log_scales += 0.03 * walk[:, 3]
        light, refocus, blur, bad, kind, a, b = rng.random(7).tolist()
        brightness = anchor.brightness * math.exp(0.1 * (light - 0.5))
        contrast = anchor.contrast
        blur = anchor.blur if refocus < 0.7 else (0.3 + 0.6 * blur) * px
        jump = (0.0, 0.0)
        if bad < 1 / 6:
            if kind < 1 / 3:  # camera shake / defocus
                blur = (1.2 + 0.8 * a) * px
            elif kind < 2 / 3:  # lighting dip
                brightness *= 0.45 + 0.25 * a
                contrast *= 0.5 + 0.25 * b
            else:  # the object jumps (a dropped frame)
                jump = ((10 * a - 5) * px, (10 * b - 5) * px)
        moved = [
            _moved(it, (dx + jump[0], dy + jump[1]) if i == 0 else (dx, dy), rot, math.exp(ls))
            for i, (it, (dx, dy), rot, ls) in enumerate(
                zip(items, offsets.tolist(), rots.tolist(), log_scales.tolist())
            )
        ]
        scene = replace(
            anchor, obj=moved[0], behind=tuple(moved[1:1 + n_behind]), front=tuple(moved[1 + n_behind:]),
            brightness=brightness, contrast=contrast, blur=blur,
        )
        frames.append(_draw(scene, rng, size))
    return frames
