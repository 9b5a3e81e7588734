"""Procedural training data: street-like scenes with license plates, and ICDAR-style text scenes.

Everything is drawn with numpy and OpenCV (Hershey fonts only), so nothing needs downloading.
Image ``k`` of a data set depends only on ``(seed, k)``: it is drawn from
``np.random.default_rng([seed, k])``, so asking for more images never changes the first ones.

Command line::

    python synthetic_data.py plates --output_dir data/plates --count 200 --seed 0 [--width 640 --height 480]
    python synthetic_data.py scenes --output_dir data/scenes --count 200 --seed 0

``plates`` writes ``plate_<k>.jpg`` + ``plate_<k>.txt`` (``x1 y1 x2 y2 x3 y3 x4 y4 TEXT``, one plate a line);
``scenes`` writes ``img_<k>.jpg`` + ``gt_img_<k>.txt`` (ICDAR 2015: ``x1,y1,...,x4,y4,TEXT``, ``###`` = don't care).
Quads are the outline of the warped plate or word box, clockwise on screen from the top-left point.
"""
from __future__ import annotations

import argparse
import logging
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

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
PLATE_RENDER_HEIGHT = 110  # px; plates are drawn flat at this height, then warped into the scene
QUAD_MARGIN = 2.0  # px kept between a quad and the image border
MAX_PLACEMENT_TRIES = 40


@dataclass(frozen=True)
class PlateSceneConfig:
    """How plate scenes are drawn.

    Attributes:
        width, height: image size in px.
        min_plates, max_plates: plates per image (inclusive).
        min_plate_width, max_plate_width: plate width as a fraction of the image width
            (sampled log-uniformly, before the perspective warp).
        max_angle: largest yaw, pitch and roll of the plate plane, degrees.
        two_row_ratio: share of plates with two rows of text.
        car_ratio: share of plates drawn on a car body (the others hang on the background).
        jpeg_quality: (lowest, highest) JPEG quality used for compression artifacts.
        degrade: False skips lighting, blur, noise and JPEG (the clean drawing, for tests and figures).
        clutter: 0-1, amount of plate-like distraction in the background (see ``draw_street_background``).
    """

    width: int = 640
    height: int = 480
    min_plates: int = 1
    max_plates: int = 3
    min_plate_width: float = 0.02
    max_plate_width: float = 0.25
    max_angle: float = 30.0
    two_row_ratio: float = 0.3
    car_ratio: float = 0.7
    jpeg_quality: tuple[int, int] = (35, 95)
    degrade: bool = True
    clutter: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"width and height must be >= 64, got {self.width}x{self.height}")
        if not 1 <= self.min_plates <= self.max_plates:
            raise ValueError(f"need 1 <= min_plates <= max_plates, got {self.min_plates}, {self.max_plates}")
        if not 0 < self.min_plate_width <= self.max_plate_width <= 0.9:
            raise ValueError(
                "need 0 < min_plate_width <= max_plate_width <= 0.9, "
                f"got {self.min_plate_width}, {self.max_plate_width}"
            )
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


def order_quad(quad: np.ndarray) -> np.ndarray:
    """Orders 4 points clockwise on screen (y down), starting at the point with the smallest x + y.

    Args:
        quad: (4, 2) pixel xy in either winding order.
    Returns:
        float32 (4, 2).
    """
    quad = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    x, y = quad[:, 0], quad[:, 1]
    signed_area = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    if signed_area < 0:  # counter-clockwise on screen
        quad = quad[::-1]
    start = int(np.argmin(quad.sum(axis=1)))
    return np.roll(quad, -start, axis=0).astype(np.float32)


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
    """Warps ``patch`` with ``homography`` and alpha-blends it into ``image`` in place (anti-aliased edges)."""
    height, width = image.shape[:2]
    if patch_mask is None:
        patch_mask = np.full(patch.shape[:2], 255, np.uint8)
    warped = cv2.warpPerspective(patch, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(patch_mask, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha = (alpha.astype(np.float32) / 255.0)[..., None]
    image[:] = np.clip(image * (1.0 - alpha) + warped * alpha, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], float32 (height, width)."""
    grid = rng.random((cells, max(2, int(cells * width / height)))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def draw_street_background(rng: np.random.Generator, width: int, height: int, clutter: float = 1.0) -> np.ndarray:
    """A street-like backdrop: sky gradient, buildings with windows, asphalt with markings, poles.

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

    # Buildings: boxes standing on the horizon, some with window grids.
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

    # Asphalt: grey with grain and large blotches, darker toward the camera or not.
    ground = height - horizon
    base = rng.uniform(50, 140)
    asphalt = base + rng.normal(0, rng.uniform(3, 14), (ground, width)) + 40 * (
        _smooth_noise(rng, ground, width, 6) - 0.5
    )
    tint = rng.uniform(0.9, 1.1, 3)
    image[horizon:] = np.clip(asphalt[..., None] * tint, 0, 255)

    # Lane markings converging to a vanishing point.
    vanish = (rng.uniform(0.2, 0.8) * width, horizon)
    marking = (230.0, 230.0, 230.0) if rng.random() < 0.6 else (40.0, 200.0, 230.0)
    for _ in range(int(round(rng.integers(1, 4) * clutter))):
        bottom_x = rng.uniform(-0.3, 1.3) * width
        for t0 in np.arange(0.0, 1.0, 0.12):
            t1 = t0 + 0.06
            p0 = (int(vanish[0] + (bottom_x - vanish[0]) * t0), int(horizon + ground * t0))
            p1 = (int(vanish[0] + (bottom_x - vanish[0]) * t1), int(horizon + ground * t1))
            cv2.line(image, p0, p1, marking, max(1, int(6 * t1)))

    # Poles and wires.
    for _ in range(int(round(rng.integers(0, 4) * clutter))):
        px = int(rng.integers(0, width))
        cv2.line(image, (px, int(rng.integers(0, horizon))), (px, height), rng.uniform(20, 120, 3).tolist(), int(rng.integers(2, 7)))
    for _ in range(int(round(rng.integers(0, 3) * clutter))):
        cv2.line(
            image,
            (0, int(rng.integers(0, horizon))),
            (width, int(rng.integers(0, horizon))),
            (30.0, 30.0, 30.0),
            1,
        )

    # Texture over everything.
    image += (_smooth_noise(rng, height, width, 12)[..., None] - 0.5) * rng.uniform(10, 50)
    return np.clip(image, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- plates


def random_plate_text(rng: np.random.Generator, two_rows: bool) -> list[str]:
    """Plate-like text: letters and digits after a random pattern.

    Returns:
        The rows of text (1 or 2), spaces marking gaps between groups.
    """

    def fill(pattern: str) -> str:
        return "".join(
            rng.choice(list(LETTERS)) if ch == "L" else rng.choice(list(DIGITS)) if ch == "D" else ch
            for ch in pattern
        )

    if two_rows:
        top, bottom = TWO_ROW_PATTERNS[int(rng.integers(len(TWO_ROW_PATTERNS)))]
        return [fill(top), fill(bottom)]
    return [fill(ONE_ROW_PATTERNS[int(rng.integers(len(ONE_ROW_PATTERNS)))])]


def _fit_text(
    canvas: np.ndarray, text: str, box: tuple[int, int, int, int], font: int, color: tuple, thickness_ratio: float
) -> None:
    """Draws ``text`` centred in ``box`` (x0, y0, x1, y1), as large as fits."""
    x0, y0, x1, y1 = box
    (text_w, text_h), _ = cv2.getTextSize(text, font, 1.0, 1)
    font_scale = min((x1 - x0) / max(text_w, 1), (y1 - y0) / max(text_h, 1))
    thickness = max(1, int(round(font_scale * thickness_ratio)))
    (text_w, text_h), _ = cv2.getTextSize(text, font, font_scale, thickness)
    origin = (int(x0 + (x1 - x0 - text_w) / 2), int(y0 + (y1 - y0 + text_h) / 2))
    cv2.putText(canvas, text, origin, font, font_scale, color, thickness, cv2.LINE_AA)


def render_plate(rng: np.random.Generator, rows: list[str]) -> np.ndarray:
    """Draws a flat plate: coloured body, border, optional side band and screws, the text rows.

    Returns:
        uint8 BGR (PLATE_RENDER_HEIGHT, w, 3); w/h is 2.0-4.7 for one row, 1.3-2.2 for two.
    """
    height = PLATE_RENDER_HEIGHT
    aspect = rng.uniform(1.3, 2.2) if len(rows) == 2 else rng.uniform(2.0, 4.7)
    width = int(height * aspect)
    body = np.array(PLATE_COLORS_BGR[int(rng.integers(len(PLATE_COLORS_BGR)))], np.float32)
    body = np.clip(body * rng.uniform(0.85, 1.05), 0, 255)
    plate = np.empty((height, width, 3), np.uint8)
    plate[:] = body.astype(np.uint8)
    ink = INK_COLORS_BGR[int(rng.integers(len(INK_COLORS_BGR)))]
    border = int(rng.integers(2, 8))
    cv2.rectangle(plate, (border // 2, border // 2), (width - 1 - border // 2, height - 1 - border // 2), ink, border)

    left = border + 6
    if len(rows) == 1 and aspect > 3.5 and rng.random() < 0.5:  # EU-style blue band
        band_w = int(height * 0.35)
        cv2.rectangle(plate, (border, border), (border + band_w, height - 1 - border), (140, 50, 0), -1)
        cv2.circle(plate, (border + band_w // 2, height // 3), band_w // 4, (0, 200, 255), 2)
        left = border + band_w + 6
    if rng.random() < 0.5:  # screw holes
        for sx in (width // 4, 3 * width // 4):
            cv2.circle(plate, (sx, border + 7), 4, (120, 120, 120), -1)

    font = HERSHEY_FONTS[int(rng.integers(len(HERSHEY_FONTS)))]
    thickness_ratio = rng.uniform(2.0, 3.5)
    inner = (left, border + 12, width - border - 6, height - border - 10)
    if len(rows) == 1:
        _fit_text(plate, rows[0], inner, font, ink, thickness_ratio)
    else:
        split = int(inner[1] + (inner[3] - inner[1]) * 0.38)
        _fit_text(plate, rows[0], (inner[0] + width // 6, inner[1], inner[2] - width // 6, split - 3), font, ink, thickness_ratio * 0.8)
        _fit_text(plate, rows[1], (inner[0], split + 3, inner[2], inner[3]), font, ink, thickness_ratio)
    return plate


def _render_car_around(rng: np.random.Generator, plate_w: int, plate_h: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A car's rear or front (body, lights, window) on a canvas with room for a plate.

    Returns:
        (canvas uint8 BGR, mask uint8, (x, y) where the plate's top-left corner goes).
    """
    car_w = int(plate_w * rng.uniform(2.6, 3.6))
    car_h = int(plate_h * rng.uniform(3.5, 5.5))
    canvas = np.zeros((car_h, car_w, 3), np.uint8)
    mask = np.zeros((car_h, car_w), np.uint8)
    color = rng.uniform(10, 240, 3).tolist()
    radius = car_w // 8
    cv2.rectangle(canvas, (radius, 0), (car_w - radius, car_h), color, -1)
    cv2.rectangle(mask, (radius, 0), (car_w - radius, car_h), 255, -1)
    cv2.rectangle(canvas, (0, radius), (car_w, car_h), color, -1)
    cv2.rectangle(mask, (0, radius), (car_w, car_h), 255, -1)
    # Rear window, lights, bumper.
    cv2.rectangle(canvas, (car_w // 6, car_h // 12), (5 * car_w // 6, car_h // 3), (40.0, 40.0, 50.0), -1)
    light_color = (30.0, 30.0, 200.0) if rng.random() < 0.6 else (200.0, 220.0, 230.0)
    light_w, light_h = car_w // 7, car_h // 10
    cv2.rectangle(canvas, (car_w // 20, car_h // 2), (car_w // 20 + light_w, car_h // 2 + light_h), light_color, -1)
    cv2.rectangle(
        canvas, (car_w - car_w // 20 - light_w, car_h // 2), (car_w - car_w // 20, car_h // 2 + light_h), light_color, -1
    )
    bumper_y = int(car_h * 0.88)
    cv2.rectangle(canvas, (0, bumper_y), (car_w, car_h), (np.array(color) * 0.5).tolist(), -1)
    plate_xy = ((car_w - plate_w) // 2, int(car_h * 0.62))
    return canvas, mask, plate_xy


def generate_plate_scene(
    rng: np.random.Generator, config: PlateSceneConfig = PlateSceneConfig()
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Draws one street scene with 1-3 license plates.

    Args:
        rng: the image's random generator (see ``image_rng``).
        config: sizes and ranges.
    Returns:
        image: uint8 BGR (height, width, 3), already blurred, noised and JPEG-degraded.
        quads: float32 (N, 4, 2), pixel xy, clockwise from top-left: the outline of each warped plate.
        texts: N plate strings (letters and digits, no spaces).
    """
    width, height = config.width, config.height
    image = draw_street_background(rng, width, height, config.clutter)
    wanted = int(rng.integers(config.min_plates, config.max_plates + 1))

    placed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (plate image, homography, quad)
    texts: list[str] = []
    log_min, log_max = np.log(config.min_plate_width), np.log(config.max_plate_width)
    for _ in range(wanted):
        rows = random_plate_text(rng, rng.random() < config.two_row_ratio)
        plate = render_plate(rng, rows)
        plate_h, plate_w = plate.shape[:2]
        corners = np.array([[0, 0], [plate_w, 0], [plate_w, plate_h], [0, plate_h]], np.float64)
        for _attempt in range(MAX_PLACEMENT_TRIES):
            dst_width = width * float(np.exp(rng.uniform(log_min, log_max)))
            angles = rng.uniform(-1, 1, 3) * config.max_angle
            center = (rng.uniform(0.05, 0.95) * width, rng.uniform(0.15, 0.95) * height)
            homography = _plane_homography((plate_w, plate_h), dst_width, center, angles)
            quad = _project(corners, homography)
            if _inside(quad, width, height) and not any(_quads_overlap(quad, other, 4.0) for _, _, other in placed):
                placed.append((plate, homography, quad))
                texts.append("".join(rows).replace(" ", ""))
                break
        else:
            log.debug("could not place plate %d without overlap; image gets fewer plates", len(placed) + 1)

    # Cars first, every plate afterwards, so a car never hides another car's plate.
    for plate, homography, _quad in placed:
        if rng.random() < config.car_ratio:
            plate_h, plate_w = plate.shape[:2]
            car, car_mask, (px, py) = _render_car_around(rng, plate_w, plate_h)
            shift = np.array([[1, 0, -px], [0, 1, -py], [0, 0, 1]], np.float64)
            _paste_warped(image, car, homography @ shift, car_mask)
    for plate, homography, _quad in placed:
        _paste_warped(image, plate, homography)

    if config.degrade:
        image = _degrade(rng, image, config.jpeg_quality)
    if placed:
        quads = np.stack([order_quad(quad) for _, _, quad in placed]).astype(np.float32)
    else:
        quads = np.zeros((0, 4, 2), np.float32)
    return image, quads, texts


# ----------------------------------------------------------------------------- degradations


def _degrade(rng: np.random.Generator, image: np.ndarray, jpeg_quality: tuple[int, int]) -> np.ndarray:
    """Lighting gradient and gamma, blur (Gaussian or motion), sensor noise, JPEG artifacts."""
    height, width = image.shape[:2]
    result = image.astype(np.float32)

    # Lighting: a linear gain ramp in a random direction, then gamma.
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs / width - 0.5) * direction[0] + (ys / height - 0.5) * direction[1]
    gain = rng.uniform(0.7, 1.2) + ramp * rng.uniform(0.0, 0.6)
    result *= gain[..., None]
    gamma = rng.uniform(0.7, 1.4)
    result = 255.0 * (np.clip(result, 0, 255) / 255.0) ** gamma

    blur = rng.random()
    if blur < 0.35:
        result = cv2.GaussianBlur(result, (0, 0), rng.uniform(0.5, 1.5))
    elif blur < 0.5:
        length = int(rng.integers(3, 7))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        result = cv2.filter2D(result, -1, kernel / max(kernel.sum(), 1e-6))

    result += rng.normal(0, rng.uniform(0, 8), result.shape).astype(np.float32)
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
        return image, np.stack([order_quad(q) for q in quads]).astype(np.float32), texts
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
            sub.add_argument("--min_plates", type=int, default=1)
            sub.add_argument("--max_plates", type=int, default=3)
            sub.add_argument("--min_plate_width", type=float, default=0.02, help="fraction of the image width")
            sub.add_argument("--max_plate_width", type=float, default=0.25, help="fraction of the image width")
            sub.add_argument("--max_angle", type=float, default=30.0, help="largest yaw/pitch/roll, degrees")
            sub.add_argument("--clutter", type=float, default=1.0,
                             help="0-1: windows, lane markings, poles and wires in the background")
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
                max_angle=args.max_angle,
                clutter=args.clutter,
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
