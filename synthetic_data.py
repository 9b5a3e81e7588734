"""Procedural training data: street scenes with license plates on cars, and ICDAR-style text scenes.

Everything is drawn with numpy and OpenCV. Characters come from TTF fonts found on the machine (DejaVu or
Liberation in the system's font folders or matplotlib's bundled DejaVu), rasterized once with Pillow; without
Pillow or fonts, OpenCV's Hershey fonts draw them, so nothing needs downloading.
Image ``k`` of a data set depends only on ``(seed, k)`` (and the fonts installed): it is drawn from
``np.random.default_rng([seed, k])``, so asking for more images never changes the first ones.

Plate layouts (``PLATE_LAYOUTS``; the annotation is always the whole plate's outline, never the characters'):

- ``eu``: 520x110 mm white (or yellow rear) plate, blue band on the left with a ring of yellow stars and the
  country letters, black characters in one row, or a 2-row square plate.
- ``us``: 12x6 inch plate, state name on top, characters in the middle and a slogan below, on white, a sky
  gradient, a colour wash or hills, coloured ink, a registration sticker; 15% are black with white or yellow.
- ``mercosul``: Brazil's white plate with a blue top band reading BRASIL, a small flag, 7 characters LLLDLDD.
- ``korea``: the white (or light-blue) one-row 12-GA-3456 plate, or the old 2-row green (white ink) or yellow
  commercial plate; the Hangul syllable is drawn with strokes and romanized in the annotation.
- ``dark``: black plates with white or silver characters, one or two rows.
- ``generic``: the first generation's white or yellow plates with coloured ink and a dark border.

Every plate gets screws, dirt, cast shadows or glare at random; 90% sit on a car's rear or front (body
colour, window, tail or head lamps, grille, bumper, badge, model name, stickers, a dealer frame around the plate).
Unannotated decoys (shop and street signs, words on walls, blank plate-shaped rectangles, lamp pairs, grille
slots) go in the backdrop (sky, buildings, trees, road, poles). 20% of scenes are at night (dark, tinted, lamps blooming, plates lit), 24% have a
shadow cast over part of the scene; then lighting, white balance, Gaussian, motion or defocus blur or low
resolution, noise and JPEG artifacts.

Command line::

    python synthetic_data.py plates --output_dir data/plates --count 200 --seed 0 [--width 640 --height 480]
    python synthetic_data.py scenes --output_dir data/scenes --count 200 --seed 0

``plates`` writes ``plate_<k>.jpg`` + ``plate_<k>.txt`` (``x1 y1 x2 y2 x3 y3 x4 y4 TEXT``, one plate a line);
``scenes`` writes ``img_<k>.jpg`` + ``gt_img_<k>.txt`` (ICDAR 2015: ``x1,y1,...,x4,y4,TEXT``, ``###`` = don't care).
Quads are the outline of the warped plate or word box, clockwise on screen from the top-left point.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.special

from geometry import order_clockwise_from_top_left

log = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase
DIGITS = string.digits
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
# One-row patterns: L = letter, D = digit, space = gap (dropped from the annotation text).
ONE_ROW_PATTERNS = ("LLL DDDD", "DLLL DDD", "LL DD LLL", "DDD LLL", "LL DDDD", "L DDD LL", "DDDD LL")
TWO_ROW_PATTERNS = (("LL", "DDDD"), ("DD", "LLL DD"), ("LLL", "DDDD"), ("L DD", "DDDD"))
PLATE_COLORS_BGR = ((245, 245, 245), (235, 240, 240), (30, 200, 240), (60, 215, 250))  # whites, yellows
INK_COLORS_BGR = ((20, 20, 20), (40, 30, 10), (90, 30, 20), (20, 20, 120))
PLATE_RENDER_HEIGHT = 110  # px; generic plates are drawn flat at this height, then warped into the scene
# Bump when a change draws other plate scenes from the same seed: demo.py then regenerates its data and
# retrains (its marker file records it, and bench_quality's cache key of the demo model).
PLATE_SCENES_VERSION = 1
HEADLAMP_COLORS_BGR = ((200, 220, 235), (170, 200, 220))
TAIL_LAMP_COLORS_BGR = ((30, 30, 190), (40, 60, 210), (20, 20, 140))
CAR_COLORS_BGR = (
    (235, 235, 235), (190, 190, 192), (128, 128, 130), (60, 60, 62), (25, 25, 28), (120, 50, 20),
    (30, 30, 160), (150, 170, 190), (40, 70, 40), (20, 90, 170), (160, 120, 60),
)
EU_COUNTRIES = ("D", "F", "NL", "RO", "PL", "I", "E", "B", "CZ", "A", "S", "P")
EU_PATTERNS = ("L DD LLL", "L DDD LLL", "LL DD LLL", "LL-DDD-LL", "LLL DDD", "LL DDDDD", "DLLL DDD", "LL DDDD L")
US_PATTERNS = ("LLL DDDD", "DLLL DDD", "DDD LLL", "LLL-DDDD", "DDDDDDD", "LL DDDDD")
US_STATES = ("ARIZONA", "Texas", "CALIFORNIA", "Ohio", "FLORIDA", "Georgia", "WASHINGTON", "Illinois",
             "NEW YORK", "Michigan", "VIRGINIA", "Oregon", "COLORADO", "Utah")
US_SLOGANS = ("Grand Canyon State", "Sunshine State", "Land of Lincoln", "Great Lakes", "Evergreen State",
              "Empire State", "dmv.gov", "Peach State")
KOREAN_SYLLABLES = ("GA", "NA", "DA", "RA", "MA", "BA", "SA", "A", "JA", "HA")  # romanized for the annotation
MODEL_NAMES = ("CAMRY", "Civic", "SPORT", "XLE", "Golf", "4MATIC", "HYBRID", "Focus", "TDI", "Logan", "GT")
DEALER_WORDS = ("AUTO CITY", "Best Motors", "CARMAX", "Dealer", "SMITH FORD", "Toyota of Tempe")
SIGN_WORDS = ("PHARMACY", "Bakery", "OPEN", "PARKING", "Main St", "EXIT", "SALE", "HOTEL", "Cafe", "STOP",
              "BUS", "Pizza 24", "BANK", "No Entry", "TAXI", "Shoes", "Oak Ave", "MARKET")
# Characters in every font's glyph atlas.
GLYPH_CHARS = LETTERS + string.ascii_lowercase + DIGITS + " -.'"
GLYPH_PIXELS = 64  # font size the atlases are rasterized at; text is resized from there
# Bold sans fonts for registration numbers and any sans or serif for labels; looked up by file name in
# the system's font folders and matplotlib's bundled fonts (DejaVu: Bitstream Vera licence; Liberation: OFL 1.1).
TTF_FONT_FILES = {
    "plate": ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono-Bold.ttf",
              "LiberationSansNarrow-Bold.ttf", "LiberationSans-Bold.ttf", "LiberationMono-Bold.ttf"),
    "label": ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSans-BoldOblique.ttf", "LiberationSerif-Bold.ttf",
              "LiberationSerif-BoldItalic.ttf", "LiberationSans-Regular.ttf", "LiberationSansNarrow-Regular.ttf"),
}
QUAD_MARGIN = 2.0  # px kept between a quad and the image border
MAX_PLACEMENT_TRIES = 40
# Standard deviation of log(plate width) around PlateSceneConfig.typical_plate_width: with a median of
# 8 % of the width, 90 % of plates fall in 3-21 %, close to real photos' 5-19 %.
PLATE_WIDTH_LOG_SPREAD = 0.6
LAYOUT_NAMES = ("eu", "us", "mercosul", "korea", "dark", "generic")  # the keys of PLATE_LAYOUTS


@dataclass(frozen=True)
class PlateSceneConfig:
    """How plate scenes are drawn.

    Attributes:
        width, height: image size in px.
        min_plates, max_plates: plates per image (inclusive).
        min_plate_width, max_plate_width: plate width as a fraction of the image width, before the
            perspective warp: the range drawn from.
        typical_plate_width: the median plate width (fraction of the image width) of a log-normal
            draw (spread ``PLATE_WIDTH_LOG_SPREAD``) kept inside [min, max]; None draws log-uniformly
            in [min, max]. Real photos put most plates near 8 % of the width (median 7.2 % in
            plates_dev, 7.9 % in plates_ro; 5-95 % range about 5-19 %), which is also the scale the
            trained checkpoint then records for eval (``augmentation.implied_max_side_len``).
        max_angle: largest yaw of the plate plane, degrees; pitch goes to half of it, roll to 0.3 of it.
        two_row_ratio: share of plates with two rows of text.
        car_ratio: share of plates drawn on a car body (the others hang on the background).
        jpeg_quality: (lowest, highest) JPEG quality used for compression artifacts.
        degrade: False skips lighting, blur, noise and JPEG (the clean drawing, for tests and figures).
        clutter: 0-1, amount of plate-like distraction in the background (see ``draw_street_background``).
        layouts: the plate layouts drawn, keys of ``PLATE_LAYOUTS`` (chosen uniformly).
        night_ratio: share of night scenes (dark, tinted, glowing lamps, lit plates); needs ``degrade``.
        max_decoys: most unannotated look-alikes (signs, blank plates, lamps, grilles) per image.
    """

    width: int = 640
    height: int = 480
    min_plates: int = 1
    max_plates: int = 3
    min_plate_width: float = 0.03
    max_plate_width: float = 0.6
    typical_plate_width: float | None = 0.08
    max_angle: float = 30.0
    two_row_ratio: float = 0.3
    car_ratio: float = 0.9
    jpeg_quality: tuple[int, int] = (35, 95)
    degrade: bool = True
    clutter: float = 1.0
    layouts: tuple[str, ...] = LAYOUT_NAMES
    night_ratio: float = 0.2
    max_decoys: int = 4

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"width and height must be >= 64, got {self.width}x{self.height}")
        if not self.layouts or any(name not in LAYOUT_NAMES for name in self.layouts):
            raise ValueError(f"layouts must be a non-empty subset of {LAYOUT_NAMES}, got {self.layouts}")
        if not 0 <= self.night_ratio <= 1:
            raise ValueError(f"night_ratio must be in [0, 1], got {self.night_ratio}")
        if self.max_decoys < 0:
            raise ValueError(f"max_decoys must be >= 0, got {self.max_decoys}")
        if not 1 <= self.min_plates <= self.max_plates:
            raise ValueError(f"need 1 <= min_plates <= max_plates, got {self.min_plates}, {self.max_plates}")
        if not 0 < self.min_plate_width <= self.max_plate_width <= 0.9:
            raise ValueError(
                "need 0 < min_plate_width <= max_plate_width <= 0.9, "
                f"got {self.min_plate_width}, {self.max_plate_width}"
            )
        if self.typical_plate_width is not None and not 0 < self.typical_plate_width < 1:
            raise ValueError(f"typical_plate_width must be in (0, 1) or None, got {self.typical_plate_width}")
        if not 0 <= self.max_angle <= 60:
            raise ValueError(f"max_angle must be in [0, 60] degrees, got {self.max_angle}")
        if not 0 <= self.clutter <= 1:
            raise ValueError(f"clutter must be in [0, 1], got {self.clutter}")


@dataclass(frozen=True)
class TextSceneConfig:
    """How ICDAR-style text scenes are drawn.

    Attributes:
        width, height: image size in px.
        min_words, max_words: words per image (inclusive).
        min_text_height, max_text_height: word height in px before the warp.
        max_angle: largest rotation of a word, degrees.
        dont_care_ratio: share of words drawn faint and small and annotated ``###``.
    """

    width: int = 640
    height: int = 480
    min_words: int = 2
    max_words: int = 8
    min_text_height: int = 10
    max_text_height: int = 48
    max_angle: float = 20.0
    dont_care_ratio: float = 0.15

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"width and height must be >= 64, got {self.width}x{self.height}")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words}, {self.max_words}")


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of a data set made with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


# ----------------------------------------------------------------------------- geometry helpers


def _rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation from angles in radians (yaw about y, pitch about x, roll about the view axis)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rot_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rot_z @ rot_x @ rot_y


def _plane_homography(
    src_size: tuple[int, int], dst_width: float, center: tuple[float, float], angles_deg: np.ndarray
) -> np.ndarray:
    """Homography taking a flat (w, h) canvas to a plate of ``dst_width`` px seen at the given angles."""
    src_w, src_h = src_size
    scale = dst_width / src_w
    # Corners of a larger reference square around the canvas centre, moved in 3D then projected.
    ref = np.array([[0, 0], [src_w, 0], [src_w, src_h], [0, src_h]], dtype=np.float64)
    centered = (ref - [src_w / 2, src_h / 2]) * scale
    points = np.concatenate([centered, np.zeros((4, 1))], axis=1) @ _rotation_matrix(
        *np.deg2rad(angles_deg)
    ).T
    focal = 3.0 * dst_width  # camera distance == focal: unrotated plate keeps its size
    depth = focal + points[:, 2]
    projected = points[:, :2] * (focal / depth)[:, None] + center
    return cv2.getPerspectiveTransform(ref.astype(np.float32), projected.astype(np.float32))


def _project(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Applies a homography to (N, 2) points."""
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography).reshape(-1, 2)


def _quads_overlap(quad_a: np.ndarray, quad_b: np.ndarray, margin: float) -> bool:
    """True when the axis-aligned boxes of two quads, grown by ``margin`` px, intersect."""
    min_a, max_a = quad_a.min(axis=0) - margin, quad_a.max(axis=0) + margin
    min_b, max_b = quad_b.min(axis=0), quad_b.max(axis=0)
    return bool(np.all(min_a <= max_b) and np.all(min_b <= max_a))


def _inside(quad: np.ndarray, width: int, height: int, margin: float = QUAD_MARGIN) -> bool:
    return bool(
        np.all(quad >= margin) and np.all(quad[:, 0] <= width - 1 - margin) and np.all(quad[:, 1] <= height - 1 - margin)
    )


def _paste_warped(
    image: np.ndarray, patch: np.ndarray, homography: np.ndarray, patch_mask: np.ndarray | None = None
) -> None:
    """Warps ``patch`` with ``homography`` and alpha-blends it into ``image`` in place (anti-aliased edges).

    Only the image rows and columns the warped patch can reach are touched, so a small patch is cheap.
    ``image`` may be uint8 or float32 (H, W, C).
    """
    height, width = image.shape[:2]
    patch_h, patch_w = patch.shape[:2]
    outline = _project(np.array([[0, 0], [patch_w, 0], [patch_w, patch_h], [0, patch_h]], np.float64), homography)
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + 2, [width, height])
    if x1 <= x0 or y1 <= y0:
        return
    if patch_mask is None:
        patch_mask = np.full(patch.shape[:2], 255, np.uint8)
    to_roi = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ homography
    size = (int(x1 - x0), int(y1 - y0))
    warped = cv2.warpPerspective(patch, to_roi, size, flags=cv2.INTER_LINEAR).astype(np.float32)
    alpha = cv2.warpPerspective(patch_mask, to_roi, size, flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    region = image[y0:y1, x0:x1]
    blended = region * (1.0 - alpha[..., None]) + warped.reshape(region.shape) * alpha[..., None]
    if image.dtype == np.uint8:
        blended = np.clip(blended, 0, 255)
    image[y0:y1, x0:x1] = blended.astype(image.dtype)


# ----------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], float32 (height, width)."""
    grid = rng.random((cells, max(2, int(cells * width / height)))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _draw_trees(rng: np.random.Generator, image: np.ndarray, horizon: int, clutter: float) -> None:
    """Up to 3 trees (times ``clutter``) standing on the horizon, drawn into ``image`` in place."""
    height, width = image.shape[:2]
    for _ in range(int(round(rng.integers(0, 4) * clutter))):
        tx, crown = int(rng.integers(0, width)), int(rng.integers(width // 20, width // 7))
        top = int(horizon * rng.uniform(0.2, 0.8))
        cv2.line(image, (tx, top), (tx, horizon + int(rng.integers(0, max(1, (height - horizon) // 4)))), (30.0, 45.0, 60.0), max(2, crown // 6))
        green = np.array([rng.uniform(20, 70), rng.uniform(70, 140), rng.uniform(30, 80)])
        for offset in rng.normal(0, crown * 0.5, (8, 2)):
            center = (int(tx + offset[0]), int(top + offset[1]))
            cv2.circle(image, center, int(crown * rng.uniform(0.4, 0.8)), (green * rng.uniform(0.7, 1.2)).tolist(), -1)


def _draw_buildings(rng: np.random.Generator, image: np.ndarray, horizon: int, clutter: float) -> None:
    """Boxes standing on the horizon, some with window grids (more with more clutter); draws in place."""
    width = image.shape[1]
    x = int(rng.integers(-40, 10))
    while x < width:
        building_w = int(rng.integers(width // 10, width // 3))
        top = int(rng.integers(0, max(1, horizon - 10)))
        color = rng.uniform(40, 220, 3)
        cv2.rectangle(image, (x, top), (x + building_w, horizon), color.tolist(), -1)
        if rng.random() < 0.7 * clutter:
            window_color = (color * rng.uniform(0.3, 0.7)).tolist()
            step_x, step_y = int(rng.integers(12, 30)), int(rng.integers(14, 34))
            for wy in range(top + 6, horizon - step_y // 2, step_y):
                for wx in range(x + 5, x + building_w - step_x // 2, step_x):
                    cv2.rectangle(image, (wx, wy), (wx + step_x // 2, wy + step_y // 2), window_color, -1)
        x += building_w + int(rng.integers(0, 30))


def _draw_asphalt(rng: np.random.Generator, image: np.ndarray, horizon: int) -> None:
    """Grey ground below the horizon with grain and large blotches; draws in place."""
    height, width = image.shape[:2]
    ground = height - horizon
    base = rng.uniform(50, 140)
    asphalt = base + rng.normal(0, rng.uniform(3, 14), (ground, width)) + 40 * (
        _smooth_noise(rng, ground, width, 6) - 0.5
    )
    tint = rng.uniform(0.9, 1.1, 3)
    image[horizon:] = np.clip(asphalt[..., None] * tint, 0, 255)


def _draw_lane_markings(rng: np.random.Generator, image: np.ndarray, horizon: int, clutter: float) -> None:
    """Dashed lane markings converging to a vanishing point on the horizon; draws in place."""
    height, width = image.shape[:2]
    ground = height - horizon
    vanish = (rng.uniform(0.2, 0.8) * width, horizon)
    marking = (230.0, 230.0, 230.0) if rng.random() < 0.6 else (40.0, 200.0, 230.0)
    for _ in range(int(round(rng.integers(1, 4) * clutter))):
        bottom_x = rng.uniform(-0.3, 1.3) * width
        for t0 in np.arange(0.0, 1.0, 0.12):
            t1 = t0 + 0.06
            p0 = (int(vanish[0] + (bottom_x - vanish[0]) * t0), int(horizon + ground * t0))
            p1 = (int(vanish[0] + (bottom_x - vanish[0]) * t1), int(horizon + ground * t1))
            cv2.line(image, p0, p1, marking, max(1, int(6 * t1)))


def _draw_poles_and_wires(rng: np.random.Generator, image: np.ndarray, horizon: int, clutter: float) -> None:
    """Vertical poles from the sky to the bottom edge and thin wires across the sky; draws in place."""
    height, width = image.shape[:2]
    for _ in range(int(round(rng.integers(0, 4) * clutter))):
        px = int(rng.integers(0, width))
        cv2.line(image, (px, int(rng.integers(0, horizon))), (px, height), rng.uniform(20, 120, 3).tolist(),
                 int(rng.integers(2, 7)))
    for _ in range(int(round(rng.integers(0, 3) * clutter))):
        start, end = (0, int(rng.integers(0, horizon))), (width, int(rng.integers(0, horizon)))
        cv2.line(image, start, end, (30.0, 30.0, 30.0), 1)


def draw_street_background(rng: np.random.Generator, width: int, height: int, clutter: float = 1.0) -> np.ndarray:
    """A street-like backdrop: sky gradient, buildings with windows, asphalt with markings, trees, poles.

    Args:
        rng: the image's random generator.
        width, height: image size, px.
        clutter: 0-1, how much plate-like distraction (windows, lane markings, poles, wires) is drawn;
            1 is a busy street, 0 leaves plain buildings on asphalt.
    Returns:
        uint8 BGR (height, width, 3).
    """
    horizon = int(height * rng.uniform(0.25, 0.6))
    rows = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None, None]
    sky_top = rng.uniform(120, 255, 3).astype(np.float32)
    sky_bottom = rng.uniform(120, 255, 3).astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    image[:horizon] = sky_top * (1 - rows) + sky_bottom * rows
    _draw_buildings(rng, image, horizon, clutter)
    _draw_asphalt(rng, image, horizon)
    _draw_lane_markings(rng, image, horizon, clutter)
    # Trees draw from their own generator, so the rest of the backdrop is the same at every clutter level.
    _draw_trees(np.random.default_rng(rng.integers(2**32)), image, horizon, clutter)
    _draw_poles_and_wires(rng, image, horizon, clutter)
    # Texture over everything.
    image += (_smooth_noise(rng, height, width, 12)[..., None] - 0.5) * rng.uniform(10, 50)
    return np.clip(image, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class GlyphFont:
    """A font as one alpha mask per character, all sharing one baseline and line height.

    Attributes:
        name: the TTF file name, or ``hershey-<id>`` for OpenCV's built-in vector fonts.
        glyphs: character -> float32 (GLYPH_LINE_HEIGHT, advance) alpha in [0, 1].
    """

    name: str
    glyphs: dict


def _glyphs_from_ttf(path: Path) -> dict:
    """Rasterizes GLYPH_CHARS of one TTF with Pillow (imported here: it is optional)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), GLYPH_PIXELS)
    ascent, descent = font.getmetrics()
    glyphs = {}
    for char in GLYPH_CHARS:
        advance = max(1, int(np.ceil(font.getlength(char))))
        canvas = Image.new("L", (advance, ascent + descent), 0)
        ImageDraw.Draw(canvas).text((0, 0), char, fill=255, font=font)
        glyphs[char] = np.asarray(canvas, np.float32) / 255.0
    return glyphs


def _glyphs_from_hershey(font_face: int) -> dict:
    """The same atlas drawn with an OpenCV Hershey font (the offline fallback)."""
    scale = cv2.getFontScaleFromHeight(font_face, int(GLYPH_PIXELS * 0.72), 3)
    line_h = int(GLYPH_PIXELS * 1.25)
    glyphs = {}
    for char in GLYPH_CHARS:
        (char_w, _), _ = cv2.getTextSize(char, font_face, scale, 3)
        canvas = np.zeros((line_h, char_w + 6), np.uint8)
        cv2.putText(canvas, char, (3, int(GLYPH_PIXELS * 0.95)), font_face, scale, 255, 3, cv2.LINE_AA)
        glyphs[char] = canvas.astype(np.float32) / 255.0
    return glyphs


def _font_search_dirs() -> list[Path]:
    """Folders that may hold TTF files: the system's, then matplotlib's bundled DejaVu (found without importing it)."""
    dirs = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        dirs.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf")
    return [folder for folder in dirs if folder.is_dir()]


@functools.lru_cache(maxsize=None)
def plate_fonts(role: str = "plate") -> tuple[GlyphFont, ...]:
    """The fonts used for one role, loaded once per process.

    Args:
        role: ``"plate"`` (bold sans for registration numbers) or ``"label"`` (state names, slogans, signs).
    Returns:
        TTF fonts found on this machine (``TTF_FONT_FILES``) when Pillow is installed, else Hershey fonts;
        never empty. The order is fixed (sorted by name) so a seed draws the same font on every run.
    """
    wanted = TTF_FONT_FILES[role]
    found: dict[str, Path] = {}
    try:
        import PIL  # noqa: F401  (only to know whether TTF rasterizing is available)

        for folder in _font_search_dirs():
            for path in sorted(folder.rglob("*.ttf")):
                if path.name in wanted and path.name not in found:
                    found[path.name] = path
    except ImportError:
        log.info("Pillow is not installed; plates use OpenCV's Hershey fonts")
    fonts = []
    for name in sorted(found):
        try:
            fonts.append(GlyphFont(name, _glyphs_from_ttf(found[name])))
        except OSError as error:
            log.warning("skipping font %s: %s", found[name], error)
    if not fonts:
        fonts = [GlyphFont(f"hershey-{face}", _glyphs_from_hershey(face)) for face in HERSHEY_FONTS]
    return tuple(fonts)


def text_mask(text: str, font: GlyphFont, spacing: float = 0.0) -> np.ndarray:
    """The alpha mask of a line of text, cropped to its ink.

    Args:
        text: characters of GLYPH_CHARS (others are drawn as spaces).
        font: a GlyphFont.
        spacing: extra gap between characters, as a fraction of the line height.
    Returns:
        float32 (h, w) in [0, 1]; (1, 1) zeros for blank text.
    """
    blank = font.glyphs[" "]
    gap = np.zeros((blank.shape[0], int(spacing * blank.shape[0])), np.float32)
    parts = []
    for char in text:
        parts += [font.glyphs.get(char, blank), gap]
    mask = np.concatenate(parts[:-1] or [blank], axis=1)
    rows, cols = np.flatnonzero(mask.max(axis=1) > 0.1), np.flatnonzero(mask.max(axis=0) > 0.1)
    if rows.size == 0:
        return np.zeros((1, 1), np.float32)
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def draw_text(canvas: np.ndarray, text: str, box: tuple[int, int, int, int], font: GlyphFont, color,
              spacing: float = 0.0, emboss: float = 0.0) -> None:
    """Draws ``text`` centred in ``box`` (x0, y0, x1, y1), as tall as the box, condensed to fit its width.

    Args:
        canvas: uint8 BGR (H, W, 3), changed in place.
        text: the characters (see ``text_mask``).
        box: (x0, y0, x1, y1) canvas px; the part outside the canvas is dropped.
        font: a GlyphFont from ``plate_fonts``.
        color: BGR ink, 0-255.
        spacing: extra gap between characters, fraction of the line height.
        emboss: 0-1, strength of a dark shadow one stroke down-right (pressed metal plates).
    """
    height, width = canvas.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))  # a box reaching past the canvas is cut to it
    x1, y1 = min(width, int(box[2])), min(height, int(box[3]))
    box_w, box_h = x1 - x0, y1 - y0
    mask = text_mask(text, font, spacing)
    if box_w < 2 or box_h < 2 or mask.shape[1] < 2:
        return
    draw_w = max(1, min(box_w, int(round(mask.shape[1] * box_h / mask.shape[0]))))
    alpha = cv2.resize(mask, (draw_w, box_h), interpolation=cv2.INTER_AREA)
    left = x0 + (box_w - draw_w) // 2
    region = canvas[y0:y1, left:left + draw_w].astype(np.float32)
    alpha = alpha[..., None]
    if emboss > 0:
        shift = max(1, box_h // 25)
        shadow = np.zeros_like(alpha)
        shadow[shift:, shift:] = alpha[:-shift, :-shift]
        region *= 1.0 - emboss * 0.6 * shadow
    region = region * (1.0 - alpha) + np.asarray(color, np.float32) * alpha
    canvas[y0:y1, left:left + region.shape[1]] = np.clip(region, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- plate layouts


def _fill(rng: np.random.Generator, pattern: str) -> str:
    """Replaces L by a letter and D by a digit (other characters stay)."""
    return "".join(
        LETTERS[int(rng.integers(26))] if ch == "L" else DIGITS[int(rng.integers(10))] if ch == "D" else ch
        for ch in pattern
    )


def random_plate_text(rng: np.random.Generator, two_rows: bool) -> list[str]:
    """Plate-like text after a random generic pattern (1 or 2 rows, spaces marking gaps)."""
    if two_rows:
        top, bottom = TWO_ROW_PATTERNS[int(rng.integers(len(TWO_ROW_PATTERNS)))]
        return [_fill(rng, top), _fill(rng, bottom)]
    return [_fill(rng, ONE_ROW_PATTERNS[int(rng.integers(len(ONE_ROW_PATTERNS)))])]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _blank_plate(width: int, height: int, body, border, border_px: int) -> np.ndarray:
    plate = np.empty((height, width, 3), np.uint8)
    plate[:] = np.asarray(body, np.uint8)
    if border_px > 0:
        half = border_px // 2
        cv2.rectangle(plate, (half, half), (width - 1 - half, height - 1 - half), border, border_px, cv2.LINE_AA)
    return plate


def _draw_hangul_like(canvas: np.ndarray, box, color, rng: np.random.Generator) -> None:
    """A Hangul-like syllable from strokes (no TTF here has Hangul): consonant left, vowel bar right."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    stroke = max(2, int(w * 0.12))
    mid = x0 + int(w * 0.55)
    shape = int(rng.integers(3))
    if shape == 0:  # giyeok
        corner = np.int32([[x0, y0 + h // 5], [mid - stroke, y0 + h // 5], [mid - stroke, y1 - h // 8]])
        cv2.polylines(canvas, [corner], False, color, stroke)
    elif shape == 1:  # nieun
        corner = np.int32([[x0 + stroke, y0 + h // 6], [x0 + stroke, y1 - h // 5], [mid - stroke, y1 - h // 5]])
        cv2.polylines(canvas, [corner], False, color, stroke)
    else:  # mieum
        cv2.rectangle(canvas, (x0 + stroke // 2, y0 + h // 4), (mid - stroke, y1 - h // 4), color, stroke)
    cv2.line(canvas, (x1 - stroke, y0), (x1 - stroke, y1), color, stroke)
    cv2.line(canvas, (x1 - stroke, y0 + h // 2), (x1 - stroke + max(2, w // 8) - w // 4, y0 + h // 2), color, stroke)


def _layout_eu(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    two_rows = rng.random() < 0.2
    width, height = (300, 214) if two_rows else (520, 110)
    body = (30, 205, 245) if rng.random() < 0.2 else (242, 244, 244)
    plate = _blank_plate(width, height, body, (25, 25, 25), 4)
    band_w = int(0.085 * 520)
    cv2.rectangle(plate, (3, 3), (band_w, height - 4), (150, 60, 0), -1)
    centre, radius = (band_w // 2 + 2, int(height * 0.3) if not two_rows else 40), band_w * 0.27
    for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False):
        star = (int(centre[0] + radius * np.cos(angle)), int(centre[1] + radius * np.sin(angle)))
        cv2.circle(plate, star, 2, (0, 210, 255), -1, cv2.LINE_AA)
    country = _pick(rng, EU_COUNTRIES)
    label = _pick(rng, plate_fonts("label"))
    draw_text(plate, country, (6, int(height * 0.58), band_w - 1, int(height * 0.58) + 30), label, (240, 240, 240))
    font, ink = _pick(rng, plate_fonts("plate")), (20, 20, 20)
    if two_rows:
        rows = [_fill(rng, "LL DD"), _fill(rng, "DDD LL")]
        draw_text(plate, rows[0], (band_w + 14, 14, width - 14, 96), font, ink, 0.05, 0.5)
        draw_text(plate, rows[1], (band_w + 14, 116, width - 14, 198), font, ink, 0.05, 0.5)
    else:
        rows = [_fill(rng, _pick(rng, EU_PATTERNS))]
        draw_text(plate, rows[0], (band_w + 14, 16, width - 14, height - 16), font, ink, 0.08, 0.5)
    return plate, rows


def _us_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A US-style plate face: white, or a colour wash / sky gradient / hills scene behind the characters."""
    plate = np.empty((height, width, 3), np.float32)
    plate[:] = 245
    style = int(rng.integers(4))
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    if style == 1:  # sky gradient fading to white
        plate[:] = rng.uniform(150, 255, 3) * (1 - rows) + 245 * rows
    elif style == 2:  # pale colour wash
        plate[:] = rng.uniform(170, 250, 3)
    elif style == 3:  # hills or mountains along the bottom
        ridge = height * (0.75 + 0.12 * np.sin(np.linspace(0, rng.uniform(3, 9), width) + rng.uniform(0, 6)))
        below = np.arange(height)[:, None] > ridge[None, :]
        plate[below] = rng.uniform(60, 200, 3)
    return plate.astype(np.uint8)


def _layout_us(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    width, height = 300, 150
    dark = rng.random() < 0.15
    if dark:
        plate = _blank_plate(width, height, (20, 20, 20), (200, 200, 200), 3)
        ink = _pick(rng, ((235, 235, 235), (40, 200, 240)))
        label_ink = ink
    else:
        plate = _us_background(rng, width, height)
        ink = _pick(rng, ((110, 30, 20), (20, 20, 20), (30, 30, 160), (40, 90, 20)))
        label_ink = _pick(rng, ((130, 40, 10), (30, 30, 170), (20, 20, 20), (40, 110, 30)))
        cv2.rectangle(plate, (1, 1), (width - 2, height - 2), ink, 2, cv2.LINE_AA)
    label = _pick(rng, plate_fonts("label"))
    draw_text(plate, _pick(rng, US_STATES), (50, 8, width - 50, 36), label, label_ink, 0.02)
    rows = [_fill(rng, _pick(rng, US_PATTERNS))]
    draw_text(plate, rows[0], (14, 44, width - 14, 118), _pick(rng, plate_fonts("plate")), ink, 0.04, 0.6)
    if rng.random() < 0.8:
        draw_text(plate, _pick(rng, US_SLOGANS), (60, 124, width - 60, 142), label, label_ink)
    if rng.random() < 0.6:  # registration sticker in a top corner
        x = 10 if rng.random() < 0.5 else width - 42
        cv2.rectangle(plate, (x, 8), (x + 32, 34), rng.uniform(0, 255, 3).tolist(), -1)
    return plate, rows


def _layout_mercosul(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    width, height = 338, 110
    plate = _blank_plate(width, height, (245, 245, 245), (25, 25, 25), 3)
    band_h = int(height * 0.24)
    cv2.rectangle(plate, (3, 3), (width - 4, band_h), (150, 70, 10), -1)
    label = _pick(rng, plate_fonts("label"))
    draw_text(plate, "BRASIL", (width // 3, 6, 2 * width // 3, band_h - 4), label, (250, 250, 250), 0.1)
    cv2.rectangle(plate, (width - 40, 7), (width - 14, band_h - 4), (60, 150, 0), -1)
    cv2.circle(plate, (width - 27, band_h // 2 + 2), 5, (0, 220, 255), -1)
    cv2.circle(plate, (22, band_h // 2 + 2), 8, (240, 240, 240), 1, cv2.LINE_AA)
    rows = [_fill(rng, "LLLDLDD")]
    font = _pick(rng, plate_fonts("plate"))
    draw_text(plate, rows[0], (14, band_h + 12, width - 14, height - 12), font, (20, 20, 20), 0.06, 0.4)
    return plate, rows


def _layout_korea(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    font = _pick(rng, plate_fonts("plate"))
    if rng.random() < 0.6:  # new white one-row: 12 GA 3456
        width, height = 520, 110
        body, ink = _pick(rng, (((245, 245, 245), (20, 20, 20)), ((245, 215, 150), (20, 20, 20))))
        plate = _blank_plate(width, height, body, (30, 30, 30), 3)
        digits_a, syllable, digits_b = _fill(rng, "DD"), _pick(rng, KOREAN_SYLLABLES), _fill(rng, "DDDD")
        draw_text(plate, digits_a, (30, 16, 150, height - 16), font, ink, 0.05)
        _draw_hangul_like(plate, (165, 22, 225, height - 22), ink, rng)
        draw_text(plate, digits_b, (240, 16, width - 30, height - 16), font, ink, 0.05)
        return plate, [digits_a + syllable + digits_b]
    width, height = 335, 170  # old two-row: green with white, or yellow commercial with black
    body, ink = _pick(rng, (((60, 110, 30), (240, 240, 240)), ((30, 200, 240), (20, 20, 20))))
    plate = _blank_plate(width, height, body, ink, 4)
    digits_a, syllable, digits_b = _fill(rng, "DD"), _pick(rng, KOREAN_SYLLABLES), _fill(rng, "DDDD")
    draw_text(plate, digits_a, (90, 12, 180, 62), font, ink, 0.05)
    _draw_hangul_like(plate, (192, 14, 232, 60), ink, rng)
    draw_text(plate, digits_b, (20, 72, width - 20, height - 14), font, ink, 0.05)
    return plate, [digits_a + syllable, digits_b]


def _layout_dark(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Black plates with white or silver characters (older European and Asian plates)."""
    two_rows = rng.random() < 0.3
    rows = random_plate_text(rng, two_rows)
    width, height = (300, 170) if two_rows else (int(110 * rng.uniform(3.2, 4.7)), 110)
    ink = _pick(rng, ((235, 235, 235), (190, 195, 200)))
    plate = _blank_plate(width, height, (18, 18, 22), ink, int(rng.integers(0, 5)))
    font = _pick(rng, plate_fonts("plate"))
    if two_rows:
        draw_text(plate, rows[0], (60, 14, width - 60, 70), font, ink, 0.05)
        draw_text(plate, rows[1], (16, 84, width - 16, height - 14), font, ink, 0.05)
    else:
        draw_text(plate, rows[0], (16, 18, width - 16, height - 18), font, ink, 0.06)
    return plate, rows


def _layout_generic(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """White or yellow plates with a dark border and coloured ink (the first generation's look)."""
    two_rows = rng.random() < 0.35
    rows = random_plate_text(rng, two_rows)
    width = int(PLATE_RENDER_HEIGHT * (rng.uniform(1.3, 2.2) if two_rows else rng.uniform(2.0, 4.7)))
    body = np.clip(np.array(_pick(rng, PLATE_COLORS_BGR)) * rng.uniform(0.85, 1.05), 0, 255)
    ink = _pick(rng, INK_COLORS_BGR)
    plate = _blank_plate(width, PLATE_RENDER_HEIGHT, body.tolist(), ink, int(rng.integers(2, 8)))
    font, height = _pick(rng, plate_fonts("plate")), PLATE_RENDER_HEIGHT
    if two_rows:
        draw_text(plate, rows[0], (width // 5, 12, width - width // 5, 42), font, ink, 0.05)
        draw_text(plate, rows[1], (12, 50, width - 12, height - 12), font, ink, 0.05)
    else:
        draw_text(plate, rows[0], (12, 16, width - 12, height - 16), font, ink, 0.05)
    return plate, rows


# name -> (renderer, real plate width in metres: sets the car's size around it)
PLATE_LAYOUTS = {
    "eu": (_layout_eu, 0.52),
    "us": (_layout_us, 0.305),
    "mercosul": (_layout_mercosul, 0.40),
    "korea": (_layout_korea, 0.45),
    "dark": (_layout_dark, 0.50),
    "generic": (_layout_generic, 0.45),
}


def _add_plate_wear(rng: np.random.Generator, plate: np.ndarray) -> np.ndarray:
    """Screws, dirt, a cast shadow and glare on a flat plate; returns a new uint8 array."""
    height, width = plate.shape[:2]
    if rng.random() < 0.7:  # screws or bolts: two at the top, sometimes two more at the bottom
        radius = max(3, int(height * rng.uniform(0.035, 0.06)))
        ys = (int(height * 0.14),) if rng.random() < 0.6 else (int(height * 0.14), int(height * 0.86))
        metal = rng.uniform(110, 230)
        for y in ys:
            for x in (int(width * 0.22), int(width * 0.78)):
                cv2.circle(plate, (x, y), radius, (metal, metal, metal * 0.97), -1, cv2.LINE_AA)
                cv2.line(plate, (x - radius + 1, y), (x + radius - 1, y), (metal * 0.4,) * 3, 1, cv2.LINE_AA)
    result = plate.astype(np.float32)
    if rng.random() < 0.4:  # dirt: low-frequency brown blotches
        dirt = _smooth_noise(rng, height, width, 4)[..., None] * rng.uniform(0.1, 0.5)
        result = result * (1 - dirt) + np.array([50, 70, 90], np.float32) * dirt
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    if rng.random() < 0.3:  # a soft-edged shadow across part of the plate (bumper, frame, tree)
        normal = rng.normal(size=2)
        side = (xs - width * rng.uniform(0.2, 0.8)) * normal[0] + (ys - height * rng.uniform(0.2, 0.8)) * normal[1]
        shade = np.clip(side / (0.05 * width) + 0.5, 0, 1)[..., None]
        result *= 1.0 - shade * rng.uniform(0.25, 0.5)
    if rng.random() < 0.25:  # glare: a bright diagonal band
        band = np.exp(-(((xs - rng.uniform(0, width)) + (ys - height / 2) * rng.uniform(-2, 2)) / (width * 0.12)) ** 2)
        result += band[..., None] * rng.uniform(40, 110)
    return np.clip(result, 0, 255).astype(np.uint8)


def render_plate(rng: np.random.Generator, layout: str | None = None) -> tuple[np.ndarray, list[str], float]:
    """Draws one flat plate.

    Args:
        rng: the image's random generator.
        layout: a key of PLATE_LAYOUTS; None draws one at random.
    Returns:
        plate: uint8 BGR (h, w, 3), the plate's whole face (the annotation is its outline).
        rows: the text rows (1 or 2; spaces and dashes mark gaps).
        plate_metres: the real plate's width in metres.
    """
    if layout is None:
        layout = _pick(rng, sorted(PLATE_LAYOUTS))
    if layout not in PLATE_LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(PLATE_LAYOUTS)}, got {layout!r}")
    renderer, plate_metres = PLATE_LAYOUTS[layout]
    plate, rows = renderer(rng)
    return _add_plate_wear(rng, plate), rows, plate_metres


def plate_annotation_text(rows: list[str]) -> str:
    """The annotation text of a plate: its characters without gaps, e.g. ``["AB-12", "CD"]`` -> ``"AB12CD"``."""
    return "".join(rows).replace(" ", "").replace("-", "")


# ----------------------------------------------------------------------------- cars and decoys


@dataclass
class _Car:
    """A car's rear or front drawn flat around a plate slot."""

    canvas: np.ndarray  # uint8 BGR (h, w, 3)
    mask: np.ndarray  # uint8 (h, w): 255 where the car is
    lamps: np.ndarray  # uint8 (h, w): 255 on lamps that glow at night
    plate_xy: tuple[int, int]  # where the plate's top-left corner goes
    scale: float  # car canvas px per flat-plate px (cars are drawn only as finely as the scene shows them)

    def to_plate(self) -> np.ndarray:
        """3x3 map from car canvas px to flat-plate px (compose with the plate's homography)."""
        px, py = self.plate_xy
        return np.array([[1 / self.scale, 0, -px / self.scale], [0, 1 / self.scale, -py / self.scale], [0, 0, 1]])


def _car_lamps(rng, canvas, lamps, car_w, car_h, top, front: bool) -> None:
    """Two lamps (tail lamps red, headlamps white), rectangles or slanted, plus a centre brake light."""
    lamp_w, lamp_h = int(car_w * rng.uniform(0.12, 0.22)), int(car_h * rng.uniform(0.07, 0.14))
    color = _pick(rng, HEADLAMP_COLORS_BGR if front else TAIL_LAMP_COLORS_BGR)
    slant = int(lamp_h * rng.uniform(-0.6, 0.6))
    for side in (0, 1):
        x0 = int(car_w * 0.04) if side == 0 else car_w - int(car_w * 0.04) - lamp_w
        inner = x0 + lamp_w if side == 0 else x0
        outer = x0 if side == 0 else x0 + lamp_w
        poly = np.int32([[outer, top], [inner, top + slant], [inner, top + lamp_h], [outer, top + lamp_h]])
        cv2.fillPoly(canvas, [poly], color, cv2.LINE_AA)
        cv2.fillPoly(lamps, [poly], 255)
        if rng.random() < 0.5:  # amber indicator segment
            cv2.rectangle(canvas, (x0, top + lamp_h * 2 // 3), (x0 + lamp_w // 3, top + lamp_h), (20, 130, 230), -1)
    if not front and rng.random() < 0.4:
        corners = (car_w // 2 - car_w // 12, int(car_h * 0.04)), (car_w // 2 + car_w // 12, int(car_h * 0.06))
        cv2.rectangle(canvas, *corners, color, -1)
        cv2.rectangle(lamps, *corners, 255, -1)


def _car_grille(rng, canvas, box, body) -> None:
    """Horizontal slats or a mesh: dark rectangles that look a little like a plate."""
    x0, y0, x1, y1 = box
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (25, 25, 28), -1)
    slat = _pick(rng, ((150, 150, 155), (body * 0.7).tolist(), (40, 40, 45)))
    step = max(3, (y1 - y0) // int(rng.integers(3, 8)))
    if rng.random() < 0.6:
        for y in range(y0 + step // 2, y1, step):
            cv2.line(canvas, (x0 + 2, y), (x1 - 2, y), slat, max(1, step // 3))
    else:
        for x in range(x0 + step // 2, x1, step):
            cv2.line(canvas, (x, y0 + 2), (x, y1 - 2), slat, max(1, step // 4))


def _car_plate_surround(rng, canvas, slot, body) -> None:
    """Sometimes a recess around the plate slot, sometimes a frame (chrome or black, dealer text on its bottom bar)."""
    plate_x, plate_y, plate_w, plate_h = slot
    if rng.random() < 0.5:
        grow = max(1, int(plate_h * rng.uniform(0.08, 0.25)))
        cv2.rectangle(canvas, (plate_x - grow, plate_y - grow), (plate_x + plate_w + grow, plate_y + plate_h + grow),
                      (body * rng.uniform(0.6, 0.95)).tolist(), -1)
    if rng.random() < 0.4:
        frame = _pick(rng, ((25, 25, 25), (190, 190, 195)))
        rim = max(3, plate_h // 10)
        bottom = plate_y + plate_h + 2 * rim
        cv2.rectangle(canvas, (plate_x - rim, plate_y - rim), (plate_x + plate_w + rim, bottom), frame, -1)
        dealer_box = (plate_x + plate_w // 4, plate_y + plate_h + 1, plate_x + 3 * plate_w // 4, bottom - 1)
        ink = (235, 235, 235) if frame[0] < 100 else (30, 30, 30)
        draw_text(canvas, _pick(rng, DEALER_WORDS), dealer_box, _pick(rng, plate_fonts("label")), ink)


def _car_decals(rng, canvas, slot, body, front: bool) -> None:
    """A badge above the plate, a model name on the body and sometimes a sticker: all unannotated."""
    plate_x, plate_y, plate_w, plate_h = slot
    car_h, car_w = canvas.shape[:2]
    badge = (plate_x + plate_w // 2, plate_y - int(car_h * 0.07))
    badge_axes = (max(2, plate_w // 14), max(1, plate_h // 7))
    cv2.ellipse(canvas, badge, badge_axes, 0, 0, 360, (200, 200, 205), -1, cv2.LINE_AA)
    if not front and rng.random() < 0.7:
        word_h = max(6, int(plate_h * rng.uniform(0.15, 0.3)))
        word_x = int(car_w * rng.uniform(0.6, 0.72))
        word_y = int(car_h * rng.uniform(0.46, 0.56))
        draw_text(canvas, _pick(rng, MODEL_NAMES), (word_x, word_y, word_x + int(car_w * 0.2), word_y + word_h),
                  _pick(rng, plate_fonts("label")), (210, 210, 215) if body.mean() < 120 else (40, 40, 45))
    if rng.random() < 0.3:  # a sticker on the rear window or bumper
        sx, sy = int(car_w * rng.uniform(0.25, 0.6)), int(car_h * rng.uniform(0.08, 0.2))
        sticker = (sx, sy, sx + int(plate_w * rng.uniform(0.3, 0.7)), sy + int(plate_h * rng.uniform(0.25, 0.5)))
        cv2.rectangle(canvas, sticker[:2], sticker[2:], rng.uniform(150, 255, 3).tolist(), -1)
        draw_text(canvas, _pick(rng, SIGN_WORDS), (sticker[0] + 2, sticker[1] + 2, sticker[2] - 2, sticker[3] - 2),
                  _pick(rng, plate_fonts("label")), rng.uniform(0, 80, 3).tolist())


def _car_tailgate(rng: np.random.Generator, canvas: np.ndarray, body: np.ndarray, plate_y: int, bumper_y: int) -> None:
    """A rear view's tailgate edge above the plate, a chrome strip or not, and red reflectors at the
    bumper's ends; draws into ``canvas`` (car_h, car_w, 3) in place."""
    car_h, car_w = canvas.shape[:2]
    line = max(1, car_h // 150)
    lid_y = plate_y - int(car_h * rng.uniform(0.03, 0.08))
    cv2.line(canvas, (int(car_w * 0.24), lid_y), (int(car_w * 0.76), lid_y), (body * 0.55).tolist(), line, cv2.LINE_AA)
    if rng.random() < 0.3:
        cv2.line(canvas, (int(car_w * 0.26), lid_y - 2 * line), (int(car_w * 0.74), lid_y - 2 * line), (210, 210, 215),
                 2 * line)
    for x in (int(car_w * 0.04), int(car_w * 0.88)):
        cv2.rectangle(canvas, (x, bumper_y + 3 * line), (x + int(car_w * 0.08), bumper_y + 6 * line), (30, 30, 150), -1)


def _render_car_around(
    rng: np.random.Generator, flat_w: int, flat_h: int, plate_metres: float, scale: float = 1.0
) -> _Car:
    """A car's rear or front (body, window, lamps, grille, badge, model name, bumper, wheels) with a plate slot.

    Args:
        flat_w, flat_h: the flat plate's size in px.
        plate_metres: the real plate width; the car is about 1.75 m wide at the same scale.
        scale: canvas px per flat-plate px, <= 1 (a car seen small is drawn small).
    """
    plate_w = max(8, int(round(flat_w * scale)))
    scale = plate_w / flat_w
    plate_h = max(3, int(round(flat_h * scale)))
    car_w = int(plate_w * 1.75 / plate_metres * rng.uniform(0.9, 1.1))
    car_h = int(car_w * rng.uniform(0.62, 0.8))
    front = rng.random() < 0.3
    body = np.array(_pick(rng, CAR_COLORS_BGR), np.float32) * rng.uniform(0.85, 1.1)
    canvas = np.zeros((car_h, car_w, 3), np.uint8)
    mask = np.zeros((car_h, car_w), np.uint8)
    lamps = np.zeros((car_h, car_w), np.uint8)
    shoulder = int(car_h * rng.uniform(0.3, 0.42))
    body_poly = np.int32([[car_w * 0.02, shoulder], [car_w * 0.98, shoulder], [car_w, car_h * 0.9], [0, car_h * 0.9]])
    roof = np.int32([[car_w * 0.2, 0], [car_w * 0.8, 0], [car_w * 0.93, shoulder + 2], [car_w * 0.07, shoulder + 2]])
    for poly in (body_poly, roof):
        cv2.fillPoly(canvas, [poly], body.tolist(), cv2.LINE_AA)
        cv2.fillPoly(mask, [poly], 255)
    # The car's shadow on the road, then wheels below the body.
    shadow = ((car_w // 2, int(car_h * 0.95)), (int(car_w * 0.52), int(car_h * 0.06)), 0, 0, 360)
    cv2.ellipse(canvas, *shadow, (12, 12, 12), -1)
    cv2.ellipse(mask, *shadow, 140, -1)
    for x in (int(car_w * 0.06), int(car_w * 0.78)):
        cv2.rectangle(canvas, (x, int(car_h * 0.85)), (x + int(car_w * 0.16), car_h - 1), (18, 18, 18), -1)
        cv2.rectangle(mask, (x, int(car_h * 0.85)), (x + int(car_w * 0.16), car_h - 1), 255, -1)
    sill = shoulder - car_h * 0.03
    window = np.int32([[car_w * 0.25, car_h * 0.04], [car_w * 0.75, car_h * 0.04], [car_w * 0.87, sill], [car_w * 0.13, sill]])
    cv2.fillPoly(canvas, [window], (rng.uniform(25, 80) + rng.uniform(-8, 12, 3)).tolist(), cv2.LINE_AA)
    _car_lamps(rng, canvas, lamps, car_w, car_h, shoulder + int(car_h * 0.04), front)

    plate_x = (car_w - plate_w) // 2
    plate_y = int(car_h * (0.66 if front else rng.uniform(0.5, 0.6)))
    if front:
        grille = (int(car_w * 0.3), shoulder + int(car_h * 0.05), int(car_w * 0.7), plate_y - int(car_h * 0.03))
        _car_grille(rng, canvas, grille, body)
    bumper_y = int(car_h * rng.uniform(0.74, 0.8)) if not front else plate_y + plate_h + int(car_h * 0.03)
    bumper = (20.0, 20.0, 22.0) if rng.random() < 0.5 else (body * 0.8).tolist()
    cv2.rectangle(canvas, (0, bumper_y), (car_w - 1, int(car_h * 0.9)), bumper, -1)
    if front or rng.random() < 0.3:  # air intake or diffuser slots
        _car_grille(rng, canvas, (int(car_w * 0.25), bumper_y + 3, int(car_w * 0.75), int(car_h * 0.88)), body)
    if not front:
        _car_tailgate(rng, canvas, body, plate_y, bumper_y)
    _car_plate_surround(rng, canvas, (plate_x, plate_y, plate_w, plate_h), body)
    _car_decals(rng, canvas, (plate_x, plate_y, plate_w, plate_h), body, front)
    shading = np.linspace(1.15, 0.75, car_h, dtype=np.float32)[:, None, None]
    canvas = np.clip(canvas * shading, 0, 255).astype(np.uint8)
    return _Car(canvas, mask, lamps, (plate_x, plate_y), scale)


def _decoy(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """An unannotated look-alike: a sign with words, words on a wall, a blank plate-shaped rectangle, lamps or grille slots.

    Returns:
        (uint8 BGR patch, uint8 alpha mask or None for the whole patch, whether it is lit at night).
    """
    kind = int(rng.integers(4))
    height = int(rng.integers(40, 120))
    if kind == 0:  # shop or street sign, sticker, or words on a wall (no panel edge)
        words = " ".join(_pick(rng, SIGN_WORDS) for _ in range(int(rng.integers(1, 3))))
        width = int(height * rng.uniform(1.5, 6))
        patch = np.empty((height, width, 3), np.uint8)
        patch[:] = rng.uniform(0, 255, 3).astype(np.uint8)
        ink = rng.uniform(0, 60, 3) if patch.mean() > 127 else rng.uniform(190, 255, 3)
        text_box = (height // 6, height // 5, width - height // 6, height - height // 5)
        font = _pick(rng, plate_fonts("label"))
        if rng.random() < 0.35:  # painted on the wall: only the letters are pasted
            letters = np.zeros_like(patch)
            draw_text(letters, words, text_box, font, (255, 255, 255))
            patch[:] = ink.astype(np.uint8)
            return patch, letters[..., 0], False
        draw_text(patch, words, text_box, font, ink.tolist())
        return patch, None, rng.random() < 0.6
    if kind == 1:  # blank plate: right shape and colours, no characters
        width = int(height * rng.uniform(2.0, 4.7))
        body = _pick(rng, PLATE_COLORS_BGR + ((20, 20, 20),))
        patch = _blank_plate(width, height, body, (25, 25, 25), int(rng.integers(0, 5)))
        return patch, None, False
    width = int(height * rng.uniform(1.5, 4.5))
    patch = np.empty((height, width, 3), np.uint8)
    patch[:] = rng.uniform(10, 90, 3).astype(np.uint8)
    if kind == 2:  # a pair of rectangular lamps
        color = _pick(rng, ((30, 30, 200), (200, 220, 235), (20, 130, 230)))
        cv2.rectangle(patch, (2, height // 4), (width // 3, 3 * height // 4), color, -1)
        cv2.rectangle(patch, (2 * width // 3, height // 4), (width - 3, 3 * height // 4), color, -1)
        return patch, None, True
    _car_grille(rng, patch, (0, 0, width - 1, height - 1), rng.uniform(40, 220, 3))
    return patch, None, False


# ----------------------------------------------------------------------------- plate scenes


@dataclass
class _Placed:
    plate: np.ndarray
    homography: np.ndarray
    quad: np.ndarray  # (4, 2) the plate's outline in the image
    text: str
    car: _Car | None
    car_box: np.ndarray | None  # (2, 2) min/max xy of the car's outline


def plate_width_fraction(quantile: float, config: PlateSceneConfig) -> float:
    """The plate width (fraction of the image width) at ``quantile`` (0-1) of the config's draw:
    log-normal around typical_plate_width truncated to [min_plate_width, max_plate_width], or
    log-uniform over that range when typical_plate_width is None."""
    log_min, log_max = np.log(config.min_plate_width), np.log(config.max_plate_width)
    if config.typical_plate_width is None:
        return float(np.exp(log_min + quantile * (log_max - log_min)))
    log_typical = np.log(config.typical_plate_width)
    low, high = (scipy.special.ndtr((bound - log_typical) / PLATE_WIDTH_LOG_SPREAD) for bound in (log_min, log_max))
    z = scipy.special.ndtri(low + quantile * (high - low))
    return float(np.clip(np.exp(log_typical + PLATE_WIDTH_LOG_SPREAD * z), config.min_plate_width,
                         config.max_plate_width))


def _place_plates(rng: np.random.Generator, config: PlateSceneConfig) -> list[_Placed]:
    """Draws plates (and their cars) flat, then finds a pose for each that keeps every plate visible.

    A later car is drawn over earlier ones, so its outline may not touch an earlier plate.
    """
    width, height = config.width, config.height
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(config.min_plates, config.max_plates + 1))):
        plate, rows, plate_metres = render_plate(rng, _pick(rng, config.layouts))
        plate_h, plate_w = plate.shape[:2]
        dst_width = width * plate_width_fraction(float(rng.uniform()), config)
        car = None
        if rng.random() < config.car_ratio:
            car = _render_car_around(rng, plate_w, plate_h, plate_metres, min(1.0, 1.5 * dst_width / plate_w))
        corners = np.array([[0, 0], [plate_w, 0], [plate_w, plate_h], [0, plate_h]], np.float64)
        for _attempt in range(MAX_PLACEMENT_TRIES):
            angles = rng.uniform(-1, 1, 3) * config.max_angle * np.array([1.0, 0.5, 0.3])  # yaw, pitch, roll
            # plates sit on cars on the road: below the upper third of the picture
            center = (rng.uniform(0.05, 0.95) * width, rng.uniform(0.45, 0.95) * height)
            homography = _plane_homography((plate_w, plate_h), dst_width, center, angles)
            quad = _project(corners, homography)
            if not _inside(quad, width, height) or any(_quads_overlap(quad, p.quad, 4.0) for p in placed):
                continue
            car_box = None
            if car is not None:
                car_h, car_w = car.canvas.shape[:2]
                outline = _project(np.array([[0, 0], [car_w, 0], [car_w, car_h], [0, car_h]], np.float64),
                                   homography @ car.to_plate())
                car_box = np.stack([outline.min(axis=0), outline.max(axis=0)])
                if any(_quads_overlap(p.quad, car_box, 2.0) for p in placed):
                    continue
            placed.append(_Placed(plate, homography, quad, plate_annotation_text(rows), car, car_box))
            break
        else:
            log.debug("could not place plate %d without overlap; image gets fewer plates", len(placed) + 1)
    return placed


def _draw_decoys(rng: np.random.Generator, image: np.ndarray, config: PlateSceneConfig, lit: np.ndarray) -> None:
    """Pastes unannotated signs, blank plates, lamps and grilles into the backdrop; marks lit ones in ``lit``."""
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(0, config.max_decoys + 1))):
        patch, mask, glows = _decoy(rng)
        patch_h, patch_w = patch.shape[:2]
        dst_width = width * float(np.exp(rng.uniform(np.log(0.03), np.log(0.3))))
        angles = rng.uniform(-1, 1, 3) * np.array([30.0, 15.0, 8.0])
        center = (rng.uniform(0, 1) * width, rng.uniform(0.05, 0.95) * height)
        homography = _plane_homography((patch_w, patch_h), dst_width, center, angles)
        _paste_warped(image, patch, homography, mask)
        if glows:
            quad = _project(np.array([[0, 0], [patch_w, 0], [patch_w, patch_h], [0, patch_h]], np.float64), homography)
            cv2.fillPoly(lit, [np.rint(quad).astype(np.int32)], 1.0)


def _night(rng: np.random.Generator, image: np.ndarray, lit: np.ndarray, glow: np.ndarray) -> np.ndarray:
    """Dark, tinted scene; plates and lit signs stay bright; lamps and street lights bloom.

    Args:
        image: uint8 BGR (H, W, 3).
        lit: float32 (H, W), 1 on plates and lit signs.
        glow: float32 (H, W, 3), light emitted by lamps (BGR, 0-255).
    """
    height, width = image.shape[:2]
    darkness = rng.uniform(0.3, 0.55)
    tint = _pick(rng, ((1.0, 0.8, 1.1), (0.8, 0.9, 1.2), (1.1, 0.9, 0.9), (1.0, 1.0, 1.0)))
    gain = darkness + lit * (rng.uniform(0.8, 1.2) - darkness)  # plate lamps and sign lights
    result = image.astype(np.float32) * gain[..., None] * np.array(tint, np.float32)
    for _ in range(int(rng.integers(2, 9))):  # street lights and distant headlights above the road
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height * 0.6)))
        light = _pick(rng, ((120, 200, 255), (255, 255, 255), (60, 60, 255)))
        cv2.circle(glow, center, int(rng.integers(2, 6)), light, -1)
    small = cv2.resize(glow, (width // 4, height // 4), interpolation=cv2.INTER_AREA)
    bloom = cv2.resize(cv2.GaussianBlur(small, (0, 0), max(2.0, width / 120)), (width, height))
    result = result + glow * 1.5 + bloom * rng.uniform(2.0, 5.0)
    return np.clip(result, 0, 255).astype(np.uint8)


def _cast_shadow(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Darkens a soft-edged random polygon (the shadow of a building, tree or truck) over part of the scene."""
    height, width = image.shape[:2]
    small = np.zeros((height // 4 + 1, width // 4 + 1), np.float32)
    corners = rng.uniform(-0.2, 1.2, (int(rng.integers(3, 7)), 2)) * [small.shape[1], small.shape[0]]
    cv2.fillPoly(small, [cv2.convexHull(corners.astype(np.int32))], 1.0)
    small = cv2.GaussianBlur(small, (0, 0), rng.uniform(0.5, 3.0))
    shade = cv2.resize(small, (width, height))[..., None] * rng.uniform(0.25, 0.5)
    return np.clip(image * (1.0 - shade), 0, 255).astype(np.uint8)


def generate_plate_scene(
    rng: np.random.Generator, config: PlateSceneConfig = PlateSceneConfig()
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Draws one street scene with license plates on cars, among unannotated look-alikes.

    Args:
        rng: the image's random generator (see ``image_rng``).
        config: sizes and ranges.
    Returns:
        image: uint8 BGR (height, width, 3), degraded unless ``config.degrade`` is False.
        quads: float32 (N, 4, 2), pixel xy, clockwise from top-left: the outline of each whole plate.
        texts: N plate strings (letters and digits, no spaces).
    """
    width, height = config.width, config.height
    image = draw_street_background(rng, width, height, config.clutter)
    night = config.degrade and rng.random() < config.night_ratio
    lit = np.zeros((height, width), np.float32)
    glow = np.zeros((height, width, 3), np.float32)
    _draw_decoys(rng, image, config, lit)
    placed = _place_plates(rng, config)
    for item in placed:  # each car, then its plate, so later cars never hide an earlier plate
        if item.car is not None:
            car_homography = item.homography @ item.car.to_plate()
            _paste_warped(image, item.car.canvas, car_homography, item.car.mask)
            if night:
                lamp_image = np.zeros(item.car.canvas.shape, np.uint8)
                lamp_image[item.car.lamps > 0] = item.car.canvas[item.car.lamps > 0]
                _paste_warped(glow, lamp_image, car_homography, item.car.lamps)
        _paste_warped(image, item.plate, item.homography)
        cv2.fillPoly(lit, [np.rint(item.quad).astype(np.int32)], 1.0)
    if night:
        image = _night(rng, image, lit, glow)
    elif config.degrade and rng.random() < 0.3:
        image = _cast_shadow(rng, image)
    if config.degrade:
        image = _degrade(rng, image, config.jpeg_quality)
    if not placed:
        return image, np.zeros((0, 4, 2), np.float32), []
    quads = order_clockwise_from_top_left(np.stack([item.quad for item in placed]))
    return image, quads.astype(np.float32), [item.text for item in placed]


# ----------------------------------------------------------------------------- degradations


def _blur(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """One of: none, Gaussian, motion (a rotated line kernel), defocus (a disc kernel), low resolution."""
    kind = rng.random()
    if kind < 0.3:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    if kind < 0.45:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    if kind < 0.55:
        radius = rng.uniform(1.0, 3.0)
        size = 2 * int(np.ceil(radius)) + 1
        kernel = cv2.circle(np.zeros((size, size), np.float32), (size // 2, size // 2), int(round(radius)), 1.0, -1)
        return cv2.filter2D(image, -1, kernel / kernel.sum())
    if kind < 0.65:
        height, width = image.shape[:2]
        factor = rng.uniform(0.35, 0.7)
        small_size = (max(1, int(width * factor)), max(1, int(height * factor)))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return image


def _degrade(rng: np.random.Generator, image: np.ndarray, jpeg_quality: tuple[int, int]) -> np.ndarray:
    """Lighting gradient, gamma and white balance, blur (see ``_blur``), sensor noise, JPEG artifacts."""
    height, width = image.shape[:2]
    result = image.astype(np.float32)
    # Lighting: a linear gain ramp in a random direction, white balance, then gamma (a lookup table).
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    ramp = (np.arange(width, dtype=np.float32)[None, :] / width - 0.5) * direction[0] + (
        np.arange(height, dtype=np.float32)[:, None] / height - 0.5) * direction[1]
    gain = rng.uniform(0.7, 1.2) + ramp * rng.uniform(0.0, 0.6)
    result = result * gain[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    gamma_table = (255.0 * (np.arange(256) / 255.0) ** rng.uniform(0.7, 1.4)).astype(np.uint8)
    result = cv2.LUT(np.clip(result, 0, 255).astype(np.uint8), gamma_table)
    result = _blur(rng, result).astype(np.float32)
    result += rng.standard_normal(result.shape, dtype=np.float32) * rng.uniform(0, 8)
    result = np.clip(result, 0, 255).astype(np.uint8)

    quality = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
    ok, encoded = cv2.imencode(".jpg", result, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a synthetic image")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


# ----------------------------------------------------------------------------- text scenes


def _random_word(rng: np.random.Generator) -> str:
    length = int(rng.integers(2, 10))
    alphabet = LETTERS + DIGITS if rng.random() < 0.3 else LETTERS
    return "".join(rng.choice(list(alphabet), length))


def generate_text_scene(
    rng: np.random.Generator, config: TextSceneConfig = TextSceneConfig()
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Draws an ICDAR-like scene: words on signs and walls over a street backdrop.

    Args:
        rng: the image's random generator (see ``image_rng``).
        config: sizes and ranges.
    Returns:
        image: uint8 BGR (height, width, 3).
        quads: float32 (N, 4, 2), pixel xy, clockwise from top-left, one per word.
        texts: N strings; ``"###"`` for don't-care words (small and faint).
    """
    width, height = config.width, config.height
    image = draw_street_background(rng, width, height)
    quads: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    texts: list[str] = []
    for _ in range(int(rng.integers(config.min_words, config.max_words + 1))):
        word = _random_word(rng)
        dont_care = rng.random() < config.dont_care_ratio
        font = HERSHEY_FONTS[int(rng.integers(len(HERSHEY_FONTS)))]
        text_h = int(rng.integers(config.min_text_height, config.max_text_height + 1))
        if dont_care:
            text_h = max(6, text_h // 3)
        thickness = max(1, text_h // 12)
        font_scale = cv2.getFontScaleFromHeight(font, text_h, thickness)
        (text_w, glyph_h), baseline = cv2.getTextSize(word, font, font_scale, thickness)
        pad = max(3, int(text_h * rng.uniform(0.2, 0.7)))  # sign margin around the word
        patch_w, patch_h = text_w + 2 * pad, glyph_h + 2 * pad
        if patch_w >= width - 8 or patch_h >= height - 8:
            continue
        background = rng.uniform(0, 255, 3)
        if dont_care:
            ink = background * 0.8 + 25
        else:  # dark ink on light signs and the reverse, so every annotated word is legible
            ink = rng.uniform(0, 60, 3) if background.mean() > 127 else rng.uniform(195, 255, 3)
        patch = np.empty((patch_h, patch_w, 3), np.uint8)
        patch[:] = background.astype(np.uint8)
        cv2.putText(patch, word, (pad, pad + glyph_h), font, font_scale, ink.tolist(), thickness, cv2.LINE_AA)
        # The annotated quad is the word's own box inside the sign, as in ICDAR 2015.
        grow = max(1, thickness)
        left, top, right, bottom = pad - grow, pad - grow, pad + text_w + grow, pad + glyph_h + grow
        corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
        for _attempt in range(MAX_PLACEMENT_TRIES):
            angle = rng.uniform(-1, 1) * config.max_angle
            center = (rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height)
            homography = _plane_homography((patch_w, patch_h), patch_w, center, np.array([0.0, 0.0, angle]))
            quad = _project(corners, homography)
            sign = _project(np.array([[0, 0], [patch_w, 0], [patch_w, patch_h], [0, patch_h]], np.float64), homography)
            if _inside(quad, width, height) and not any(_quads_overlap(sign, other, 3.0) for other in signs):
                _paste_warped(image, patch, homography)
                signs.append(sign)
                quads.append(quad)
                texts.append("###" if dont_care else word)
                break
    image = _degrade(rng, image, (50, 95))
    if quads:
        return image, order_clockwise_from_top_left(np.stack(quads)).astype(np.float32), texts
    return image, np.zeros((0, 4, 2), np.float32), texts


# ----------------------------------------------------------------------------- writing data sets


def _int_quad(quad: np.ndarray, width: int, height: int) -> np.ndarray:
    """Rounds a quad to integer pixels inside the image."""
    rounded = np.rint(quad)
    rounded[:, 0] = rounded[:, 0].clip(0, width - 1)
    rounded[:, 1] = rounded[:, 1].clip(0, height - 1)
    return rounded.astype(np.int64)


def format_plate_line(quad: np.ndarray, text: str, width: int, height: int) -> str:
    """One ``plate``-format line: ``x1 y1 x2 y2 x3 y3 x4 y4 TEXT`` (integers)."""
    return " ".join(str(v) for v in _int_quad(quad, width, height).reshape(-1)) + f" {text}"


def format_icdar_line(quad: np.ndarray, text: str, width: int, height: int) -> str:
    """One ICDAR 2015 line: ``x1,y1,x2,y2,x3,y3,x4,y4,TEXT`` (integers)."""
    return ",".join(str(v) for v in _int_quad(quad, width, height).reshape(-1)) + f",{text}"


def _write_dataset(output_dir: str | Path, count: int, start: int, generate, image_name, annotation_name,
                   format_line) -> list[Path]:
    """Writes images k in [start, start + count) with their annotation files; returns the image paths."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(start, start + count):
        image, quads, texts = generate(index)
        image_path = output_dir / image_name(index)
        _write_jpeg(image_path, image)
        lines = [format_line(quad, text) for quad, text in zip(quads, texts)]
        (output_dir / annotation_name(index)).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(image_path)
    return written


def write_plate_dataset(
    output_dir: str | Path, count: int, seed: int, config: PlateSceneConfig = PlateSceneConfig(), start: int = 0
) -> list[Path]:
    """Writes ``plate_<k>.jpg`` + ``plate_<k>.txt`` for k in [start, start + count).

    Returns:
        The image paths written, in order.
    """
    return _write_dataset(
        output_dir, count, start,
        generate=lambda index: generate_plate_scene(image_rng(seed, index), config),
        image_name=lambda index: f"plate_{index:05d}.jpg",
        annotation_name=lambda index: f"plate_{index:05d}.txt",
        format_line=lambda quad, text: format_plate_line(quad, text, config.width, config.height))


def write_text_dataset(
    output_dir: str | Path, count: int, seed: int, config: TextSceneConfig = TextSceneConfig(), start: int = 0
) -> list[Path]:
    """Writes ICDAR-style ``img_<k>.jpg`` + ``gt_img_<k>.txt`` for k in [start, start + count), k counted from 1.

    Returns:
        The image paths written, in order.
    """
    return _write_dataset(
        output_dir, count, start,
        generate=lambda index: generate_text_scene(image_rng(seed, index), config),
        image_name=lambda index: f"img_{index + 1}.jpg",
        annotation_name=lambda index: f"gt_img_{index + 1}.txt",
        format_line=lambda quad, text: format_icdar_line(quad, text, config.width, config.height))


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path}")
    path.write_bytes(encoded.tobytes())


# ----------------------------------------------------------------------------- command line


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (("plates", "street scenes with license plates (plate format)"), ("scenes", "ICDAR 2015-style text scenes")):
        sub = commands.add_parser(name, help=what)
        sub.add_argument("--output_dir", required=True, help="folder to write into (created if missing)")
        sub.add_argument("--count", type=int, default=100, help="number of images")
        sub.add_argument("--seed", type=int, default=0, help="data set seed; image k depends only on (seed, k)")
        sub.add_argument("--start", type=int, default=0, help="index of the first image")
        sub.add_argument("--width", type=int, default=640, help="image width, px")
        sub.add_argument("--height", type=int, default=480, help="image height, px")
        if name == "plates":
            plates = PlateSceneConfig()
            sub.add_argument("--min_plates", type=int, default=plates.min_plates)
            sub.add_argument("--max_plates", type=int, default=plates.max_plates)
            sub.add_argument("--min_plate_width", type=float, default=plates.min_plate_width,
                             help="fraction of the image width")
            sub.add_argument("--max_plate_width", type=float, default=plates.max_plate_width,
                             help="fraction of the image width")
            sub.add_argument("--typical_plate_width", type=float, default=plates.typical_plate_width,
                             help="median plate width, fraction of the image width (log-normal draw inside "
                                  "[min, max]); 0 draws log-uniformly in [min, max]")
            sub.add_argument("--max_angle", type=float, default=plates.max_angle,
                             help="largest yaw, degrees (pitch to half, roll to 0.3 of it)")
            sub.add_argument("--clutter", type=float, default=plates.clutter,
                             help="0-1: windows, lane markings, poles and wires in the background")
            sub.add_argument("--layouts", default=",".join(plates.layouts),
                             help=f"comma-separated plate layouts out of {','.join(LAYOUT_NAMES)}")
            sub.add_argument("--night_ratio", type=float, default=plates.night_ratio, help="share of night scenes")
            sub.add_argument("--max_decoys", type=int, default=plates.max_decoys,
                             help="most unannotated signs, blank plates, lamps and grilles per image")
        else:
            sub.add_argument("--max_words", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "plates":
            config = PlateSceneConfig(
                width=args.width,
                height=args.height,
                min_plates=args.min_plates,
                max_plates=args.max_plates,
                min_plate_width=args.min_plate_width,
                max_plate_width=args.max_plate_width,
                typical_plate_width=args.typical_plate_width or None,
                max_angle=args.max_angle,
                clutter=args.clutter,
                layouts=tuple(name.strip() for name in args.layouts.split(",") if name.strip()),
                night_ratio=args.night_ratio,
                max_decoys=args.max_decoys,
            )
            paths = write_plate_dataset(args.output_dir, args.count, args.seed, config, start=args.start)
        else:
            config = TextSceneConfig(width=args.width, height=args.height, max_words=max(2, args.max_words))
            paths = write_text_dataset(args.output_dir, args.count, args.seed, config, start=args.start)
    except (ValueError, OSError) as error:
        print(f"synthetic_data.py: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} images with annotations to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
