"""EAST-tf2's training augmentation for one sample: random rescale, crop, pad, resize, label maps.

numpy/OpenCV only. ``make_example`` is a pure function of (sample, rng state, config); the image
is decoded once (at a reduced JPEG size when the output is small) and warped straight into the
network input, with every random choice computed in source coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

import geometry
import network_io
from samples import DataError, Sample, inspect_image

__all__ = ["AugmentConfig", "MAX_DRAWS_PER_SLOT", "implied_max_side_len", "jitter_colors", "make_example",
           "training_view_sides", "try_example", "write_rgb"]

# EAST-tf2's crop_area gives up after this many random tries.
CROP_MAX_TRIES = 50
# Random windows tried for a scale-matched background crop before EAST-tf2's background crop.
BACKGROUND_TRIES = 20
# A batch slot draws at most this many images before giving up (unreadable images, failed crops).
MAX_DRAWS_PER_SLOT = 100
# Text crops drawn to find the scale at which training shows whole images (implied_max_side_len).
# Over 10 draw seeds of the fine-tune command's crops, the median of 256 spanned 352-448 on plates_dev
# and 576-704 on plates_ro, that of 2048 one 32 px step (bench/bench_recorded_scale.py); about 1 s
# at the start of a run.
SCALE_DRAWS = 2048


@dataclass(frozen=True)
class AugmentConfig:
    """EAST-tf2's training augmentation settings.

    input_size: side of the square network input, px (multiple of 32).
    background_ratio: probability of a crop without text.
    random_scale: image scales drawn uniformly; each axis gets an extra jitter in [-0.10, 0.09].
    min_crop_side_ratio: a crop is at least this fraction of the (scaled) image on each side.
    max_image_large_side: images whose longer side exceeds this are downscaled first, px.
    max_text_size: after the random scale, the image is downscaled so no quad's bounding box is
        wider or taller than this, px.
    min_text_size: quads whose shorter side is below this (after augmentation) are masked out, px.
    text_width_range: None (EAST-tf2's augmentation above) or (low, high) fractions of input_size:
        then a text crop draws one box (a care box where there is one) and a target width
        log-uniformly in [low, high] * input_size, scales the image so that this box's horizontal
        extent gets exactly that width in the network input (height jittered by -10..+9 % like
        EAST-tf2's per-axis scale), and crops at most input_size px around it with EAST-tf2's
        rule (crop edges cut no text). random_scale, max_image_large_side and max_text_size do not
        apply to those crops. Background crops (background_ratio) are drawn at the same scales: a
        random text-free input_size window of the image scaled as a text crop of it would be
        (EAST-tf2's background crop where none is found). Teaches text (plates) from a few % to
        most of the input width whatever the photo's resolution, and non-text at the same zooms.
    text_height_range: None or (low, high) fractions of input_size: as text_width_range, but the
        drawn size is the chosen box's height (geometry.text_heights: its shorter pair of opposite
        edges), so plates of every aspect (a 2:1 US plate, a 4.7:1 EU one) are taught at the same
        character sizes. At most one of the two ranges is set.
    color_jitter: 0 (EAST-tf2: pixels as decoded) or the strength s in (0, 1) of a random
        brightness, contrast, saturation and colour cast of each crop (see ``jitter_colors``).
    degrade: probability in [0, 1] that a crop is degraded as a poor camera would show it: lost
        resolution, sensor noise, JPEG blocks (see ``degrade_camera``); 0 = never (EAST-tf2).
    """

    input_size: int = 512
    background_ratio: float = 3 / 8
    random_scale: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    min_crop_side_ratio: float = 0.1
    max_image_large_side: int = 1280
    max_text_size: int = 800
    min_text_size: int = 10
    text_width_range: tuple[float, float] | None = None
    text_height_range: tuple[float, float] | None = None
    color_jitter: float = 0.0
    degrade: float = 0.0

    def __post_init__(self):
        if self.input_size <= 0 or self.input_size % network_io.OUTPUT_STRIDE:
            raise ValueError(f"input_size must be a positive multiple of {network_io.OUTPUT_STRIDE}, got {self.input_size}")
        if not 0 <= self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in [0, 1], got {self.background_ratio}")
        if not self.random_scale or min(self.random_scale) <= 0.1:
            raise ValueError(f"random_scale must be scales above 0.1, got {self.random_scale}")
        check_text_size_ranges(self.text_width_range, self.text_height_range)
        check_pixel_augmentation(self.color_jitter, self.degrade)

    @property
    def scales_by_text_size(self) -> bool:
        """Whether text crops are scaled to a drawn text width or height (else EAST-tf2's random_scale)."""
        return self.text_width_range is not None or self.text_height_range is not None


def check_pixel_augmentation(color_jitter: float, degrade: float) -> None:
    """ValueError unless color_jitter is in [0, 1) and degrade in [0, 1] (AugmentConfig's fields)."""
    if not 0.0 <= color_jitter < 1.0:
        raise ValueError(f"color_jitter must be in [0, 1), got {color_jitter}")
    if not 0.0 <= degrade <= 1.0:
        raise ValueError(f"degrade must be in [0, 1], got {degrade}")


def check_text_size_ranges(text_width_range, text_height_range=None) -> None:
    """ValueError unless each range is None or (low, high) with 0 < low <= high <= 1, and not both are set."""
    if text_width_range is not None and text_height_range is not None:
        raise ValueError("text_width_range and text_height_range exclude each other: give one of them")
    for name, text_range in (("text_width_range", text_width_range), ("text_height_range", text_height_range)):
        if text_range is None:
            continue
        try:
            low, high = (float(value) for value in text_range)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be two fractions of input_size (low, high), got {text_range!r}") from None
        if not 0 < low <= high <= 1:
            raise ValueError(f"{name} must satisfy 0 < low <= high <= 1 (fractions of input_size), "
                             f"got {text_range!r}")


@dataclass(frozen=True)
class _CropPlan:
    """Where a crop of the (virtually) rescaled image lands in the square network input."""

    scale_xy: tuple[float, float]     # source px -> rescaled px
    crop_box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax (inclusive) in rescaled px
    shift_xy: tuple[int, int]          # where the crop's top-left lands in the padded square, px
    side: int                          # side of the padded square before resizing to input_size
    selected: np.ndarray               # indices of the quads inside the crop


def _random_crop(scaled_hw, quads, rng, *, crop_background, min_crop_side_ratio):
    """EAST-tf2's crop_area: a crop whose edges cut no text. Returns (xmin, ymin, xmax, ymax, selected)
    or, when no crop is found, the whole image and every quad."""
    height, width = scaled_hw
    pad_h, pad_w = height // 10, width // 10
    rounded = np.round(quads).astype(np.int64).reshape(-1, 4, 2)
    covered_x = _covered(rounded[:, :, 0].min(axis=1) + pad_w, rounded[:, :, 0].max(axis=1) + pad_w, width + 2 * pad_w)
    covered_y = _covered(rounded[:, :, 1].min(axis=1) + pad_h, rounded[:, :, 1].max(axis=1) + pad_h, height + 2 * pad_h)
    free_y = np.flatnonzero(~covered_y)
    free_x = np.flatnonzero(~covered_x)
    whole = (0, 0, width - 1, height - 1, np.arange(len(quads)))
    if free_y.size == 0 or free_x.size == 0:
        return whole
    for _ in range(CROP_MAX_TRIES):
        xs = rng.choice(free_x, size=2)
        xmin, xmax = np.clip([xs.min() - pad_w, xs.max() - pad_w], 0, width - 1)
        ys = rng.choice(free_y, size=2)
        ymin, ymax = np.clip([ys.min() - pad_h, ys.max() - pad_h], 0, height - 1)
        if xmax - xmin < min_crop_side_ratio * width or ymax - ymin < min_crop_side_ratio * height:
            continue
        inside = ((quads[..., 0] >= xmin) & (quads[..., 0] <= xmax)
                  & (quads[..., 1] >= ymin) & (quads[..., 1] <= ymax)).all(axis=1)
        selected = np.flatnonzero(inside)
        if selected.size == 0 and not crop_background:
            continue
        return int(xmin), int(ymin), int(xmax), int(ymax), selected
    return whole


def _plan_crop(sample: Sample, image_hw, rng: np.random.Generator, config: AugmentConfig) -> _CropPlan | None:
    """Draws the random choices for one sample; None where EAST-tf2 moves on to another image."""
    if not config.scales_by_text_size or not len(sample.quads):
        return _plan_east_crop(sample, image_hw, rng, config)
    if rng.random() < config.background_ratio:
        plan = _plan_text_size_background(sample, image_hw, rng, config)
        return plan if plan is not None else _plan_east_crop(sample, image_hw, rng, config, crop_background=True)
    return _plan_text_size_crop(sample, image_hw, rng, config)


def _plan_east_crop(sample: Sample, image_hw, rng: np.random.Generator, config: AugmentConfig,
                    crop_background: bool | None = None) -> _CropPlan | None:
    """EAST-tf2's choices: random scale, then a text or (probability background_ratio, or when
    crop_background is True) a text-free crop."""
    height, width = image_hw
    base = min(1.0, config.max_image_large_side / max(height, width))
    random_scale = float(rng.choice(np.asarray(config.random_scale, dtype=np.float64)))
    scale_x = base * (random_scale + rng.integers(-10, 10) / 100.0)
    scale_y = base * (random_scale + rng.integers(-10, 10) / 100.0)
    quads = sample.quads.astype(np.float64)
    if len(quads):
        extents = quads.max(axis=1) - quads.min(axis=1)
        text_size = max(extents[:, 0].max() * scale_x, extents[:, 1].max() * scale_y)
        if text_size > config.max_text_size:
            scale_x *= config.max_text_size / text_size
            scale_y *= config.max_text_size / text_size
    # Same size as cv2.resize(image, None, fx, fy) would give; the image itself is never resized.
    scaled_hw = (max(1, round(height * scale_y)), max(1, round(width * scale_x)))
    scaled_quads = quads * np.array([scale_x, scale_y])
    if crop_background is None:
        crop_background = rng.random() < config.background_ratio
    xmin, ymin, xmax, ymax, selected = _random_crop(scaled_hw, scaled_quads, rng, crop_background=crop_background,
                                                    min_crop_side_ratio=config.min_crop_side_ratio)
    if crop_background == (selected.size > 0):
        return None
    crop_w, crop_h = xmax - xmin + 1, ymax - ymin + 1
    side = max(crop_w, crop_h, config.input_size)
    shift_y = int(rng.integers(side - crop_h + 1))
    shift_x = int(rng.integers(side - crop_w + 1))
    return _CropPlan((scale_x, scale_y), (xmin, ymin, xmax, ymax), (shift_x, shift_y), side, selected)


def _covered(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """bool (length,): positions inside any [start, end) range (EAST-tf2's text projection)."""
    counts = np.zeros(length + 1, np.int64)
    np.add.at(counts, np.clip(starts, 0, length), 1)
    np.add.at(counts, np.clip(ends, 0, length), -1)
    return np.cumsum(counts[:-1]) > 0


def _text_window(free: np.ndarray, low: int, high: int, side: int, rng: np.random.Generator):
    """(start, end) inclusive: a random window of at most ``side`` positions of [0, len(free) - 1]
    holding [low, high], whose ends lie on free positions (or the borders); None when none exists."""
    length = len(free)
    free = free.copy()
    free[[0, -1]] = True
    starts = np.arange(max(0, high - side + 1), min(low, length - 1) + 1)
    starts = starts[free[starts]]
    # The widest window from each start: the last free position within side px of it.
    last_free = np.maximum.accumulate(np.where(free, np.arange(length), -1))
    ends = last_free[np.minimum(starts + side - 1, length - 1)]
    fits = ends >= high
    if not fits.any():
        return None
    pick = int(rng.integers(np.count_nonzero(fits)))
    return int(starts[fits][pick]), int(ends[fits][pick])


def _text_size_scale(sample: Sample, rng: np.random.Generator, config: AugmentConfig):
    """(chosen quad index, scale_x, scale_y): the scale at which one random box (a care box where
    there is one) is ``text_width_range`` * input_size wide, or ``text_height_range`` * input_size
    tall (see AugmentConfig)."""
    size = config.input_size
    quads = sample.quads.astype(np.float64)
    care = np.flatnonzero(~sample.dont_care)
    chosen = int(rng.choice(care)) if care.size else int(rng.integers(len(quads)))
    extent = np.maximum(quads[chosen].max(axis=0) - quads[chosen].min(axis=0), 1e-6)
    if config.text_height_range is not None:
        (low, high), measured = config.text_height_range, max(float(geometry.text_heights(quads[chosen])), 1e-6)
    else:
        (low, high), measured = config.text_width_range, extent[0]
    target_size = size * float(np.exp(rng.uniform(np.log(low), np.log(high))))
    scale_x = target_size / measured
    scale_y = scale_x * (1.0 + rng.integers(-10, 10) / 100.0)
    # The chosen box must fit the input with a free column/row on each side.
    fit = min(1.0, (size - 2) / (extent[0] * scale_x), (size - 2) / (extent[1] * scale_y))
    return chosen, scale_x * fit, scale_y * fit


def _plan_text_size_background(sample: Sample, image_hw, rng: np.random.Generator,
                               config: AugmentConfig) -> _CropPlan | None:
    """A text-free input_size window of the image at the scale a text crop of it would draw, so the
    network meets non-text (lamps, grilles, signs) at the zoom it meets text; None when
    BACKGROUND_TRIES random windows all touch a box."""
    height, width = image_hw
    size = config.input_size
    _, scale_x, scale_y = _text_size_scale(sample, rng, config)
    scaled_h, scaled_w = max(1, round(height * scale_y)), max(1, round(width * scale_x))
    scaled = sample.quads.astype(np.float64) * np.array([scale_x, scale_y])
    box_min, box_max = scaled.min(axis=1), scaled.max(axis=1)  # (N, 2) x, y
    for _ in range(BACKGROUND_TRIES):
        xmin, ymin = int(rng.integers(max(1, scaled_w - size + 1))), int(rng.integers(max(1, scaled_h - size + 1)))
        xmax, ymax = min(scaled_w, xmin + size) - 1, min(scaled_h, ymin + size) - 1
        touches = ((box_max[:, 0] >= xmin) & (box_min[:, 0] <= xmax + 1)
                   & (box_max[:, 1] >= ymin) & (box_min[:, 1] <= ymax + 1))
        if not touches.any():
            shift_x = int(rng.integers(size - (xmax - xmin + 1) + 1))
            shift_y = int(rng.integers(size - (ymax - ymin + 1) + 1))
            return _CropPlan((scale_x, scale_y), (xmin, ymin, xmax, ymax), (shift_x, shift_y), size,
                             np.zeros(0, np.int64))
    return None


def _plan_text_size_crop(sample: Sample, image_hw, rng: np.random.Generator, config: AugmentConfig) -> _CropPlan | None:
    """A crop in which one random box has the drawn text width or height (see AugmentConfig)."""
    height, width = image_hw
    size = config.input_size
    quads = sample.quads.astype(np.float64)
    chosen, scale_x, scale_y = _text_size_scale(sample, rng, config)
    scaled_hw = (max(1, round(height * scale_y)), max(1, round(width * scale_x)))
    scaled = quads * np.array([scale_x, scale_y])
    rounded = np.round(scaled).astype(np.int64)
    windows = []
    for axis, length in ((0, scaled_hw[1]), (1, scaled_hw[0])):
        free = ~_covered(rounded[:, :, axis].min(axis=1), rounded[:, :, axis].max(axis=1), length)
        low_px = int(np.clip(np.floor(scaled[chosen, :, axis].min()), 0, length - 1))
        high_px = int(np.clip(np.ceil(scaled[chosen, :, axis].max()), 0, length - 1))
        windows.append(_text_window(free, low_px, high_px, size, rng))
    if windows[0] is None or windows[1] is None:
        return None
    (xmin, xmax), (ymin, ymax) = windows
    inside = ((scaled[..., 0] >= xmin) & (scaled[..., 0] <= xmax)
              & (scaled[..., 1] >= ymin) & (scaled[..., 1] <= ymax)).all(axis=1)
    shift_y = int(rng.integers(size - (ymax - ymin + 1) + 1))
    shift_x = int(rng.integers(size - (xmax - xmin + 1) + 1))
    return _CropPlan((scale_x, scale_y), (xmin, ymin, xmax, ymax), (shift_x, shift_y), size, np.flatnonzero(inside))


def _reduced_read_flag(total_scale: float) -> tuple[int, int]:
    """(cv2.imread flag, reduction factor): decode a JPEG at 1/2, 1/4 or 1/8 size when the output is that small."""
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if total_scale * factor <= 1.0:
            return flag, factor
    return cv2.IMREAD_COLOR, 1


def _read_image(image_path: str, image_hw, total_scale: float) -> tuple[np.ndarray, int]:
    """(BGR image, reduction factor): a JPEG that ends up small is decoded at 1/2, 1/4 or 1/8 size."""
    height, width = image_hw
    flag, factor = _reduced_read_flag(total_scale)
    if factor > 1 and Path(image_path).suffix.lower() in (".jpg", ".jpeg"):
        image = cv2.imread(image_path, flag)
        # libjpeg's scaled decode gives ceil(size / factor); anything else (a PNG named .jpg) is read in full.
        if image is not None and image.shape[:2] == (math.ceil(height / factor), math.ceil(width / factor)):
            return image, factor
    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{image_path}: unreadable image")
    if image.shape[:2] != (height, width):
        raise DataError(f"{image_path}: image is {image.shape[1]}x{image.shape[0]} px, expected {width}x{height} "
                        f"(file changed since loading?)")
    return image, 1


def jitter_colors(image_bgr: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A photometric variant of uint8 BGR (h, w, 3) pixels, as a new uint8 array of that shape.

    Brightness, contrast (towards the image's mean grey: haze, a washed-out sensor) and
    saturation (towards each pixel's grey) are each scaled by a factor drawn uniformly in
    [1 - strength, 1 + strength] (torchvision's ColorJitter(s, s, s), as SakuraRiven/EAST trains
    with); then each channel gets a gain in [1 - strength / 2, 1 + strength / 2] (a colour cast,
    white balance). Two rng.uniform calls of 3 values each; strength 0 returns the pixels unchanged.
    """
    low, high = 1.0 - strength, 1.0 + strength
    brightness, contrast, saturation = rng.uniform(low, high, 3)
    cast = rng.uniform(1.0 - strength / 2, 1.0 + strength / 2, 3).astype(np.float32)
    pixels = image_bgr.astype(np.float32) * np.float32(brightness)
    grey = pixels @ np.array([0.114, 0.587, 0.299], np.float32)  # BT.601 luma of B, G, R
    mean_grey = grey.mean()
    pixels = mean_grey + (pixels - mean_grey) * np.float32(contrast)
    grey = mean_grey + (grey - mean_grey) * np.float32(contrast)
    pixels = grey[..., None] + (pixels - grey[..., None]) * np.float32(saturation)
    return np.clip(pixels * cast + 0.5, 0, 255).astype(np.uint8)


# degrade_camera's ranges: a crop is shown at 1/MAX_RESOLUTION_LOSS..1 of its resolution, with sensor
# noise of up to MAX_NOISE_SIGMA grey levels, JPEG-compressed at a quality in JPEG_QUALITY_RANGE.
MAX_RESOLUTION_LOSS = 3.0
MAX_NOISE_SIGMA = 8.0
JPEG_QUALITY_RANGE = (20, 80)


def degrade_camera(image_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A poorer camera's view of uint8 BGR (h, w, 3) pixels, as a new uint8 array of that shape.

    Three degradations, each applied with probability 1/2 in this order (always four rng draws
    and one more for the noise pixels when it applies, so the stream stays a pure function of the rng):
    lost resolution (shrunk by a factor in [1, MAX_RESOLUTION_LOSS] with area averaging and scaled
    back up bilinearly: a plate far from a small sensor), Gaussian sensor noise (sigma in
    [1, MAX_NOISE_SIGMA] grey levels) and JPEG compression (quality in JPEG_QUALITY_RANGE).
    Synthetic scenes are rendered sharp and saved once; real photos at an eval scale are not.
    """
    apply = rng.random(3) < 0.5
    loss, sigma, quality = rng.uniform((1.0, 1.0, JPEG_QUALITY_RANGE[0]), (MAX_RESOLUTION_LOSS, MAX_NOISE_SIGMA,
                                                                           JPEG_QUALITY_RANGE[1]))
    height, width = image_bgr.shape[:2]
    pixels = image_bgr
    if apply[0] and min(height, width) / loss >= 2:
        small = cv2.resize(pixels, (max(1, round(width / loss)), max(1, round(height / loss))),
                           interpolation=cv2.INTER_AREA)
        pixels = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if apply[1]:
        noise = rng.normal(0.0, sigma, pixels.shape).astype(np.float32)
        pixels = np.clip(pixels.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)
    if apply[2]:
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        pixels = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else pixels
    return pixels if pixels is not image_bgr else image_bgr.copy()


def _render(image_path: str, image_hw, plan: _CropPlan, input_size: int, rng: np.random.Generator,
            color_jitter: float = 0.0, degrade: float = 0.0) -> np.ndarray:
    """The augmented image, uint8 BGR (S, S, 3): one decode and one affine warp of the crop region only;
    a ``color_jitter`` strength recolours that region (``jitter_colors``), never the black padding, and
    with probability ``degrade`` it then passes through ``degrade_camera``; both draw from ``rng``."""
    ratio = input_size / plan.side
    scale_x, scale_y = plan.scale_xy[0] * ratio, plan.scale_xy[1] * ratio
    xmin, ymin, xmax, ymax = plan.crop_box
    shift_x, shift_y = plan.shift_xy
    image, factor = _read_image(image_path, image_hw, min(scale_x, scale_y))
    # Output px = (source px * scale - crop origin + shift) * ratio; a reduced pixel j covers
    # source pixels [factor*j, factor*j + factor), centred at factor*j + (factor-1)/2.
    offset_x = (shift_x - xmin) * ratio + scale_x * (factor - 1) / 2
    offset_y = (shift_y - ymin) * ratio + scale_y * (factor - 1) / 2
    # Only the crop's rectangle gets pixels; the rest is EAST-tf2's black padding.
    x0, x1 = round(shift_x * ratio), min(input_size, round((shift_x + xmax - xmin + 1) * ratio))
    y0, y1 = round(shift_y * ratio), min(input_size, round((shift_y + ymax - ymin + 1) * ratio))
    warp = np.array([[scale_x * factor, 0.0, offset_x - x0], [0.0, scale_y * factor, offset_y - y0]])
    canvas = np.zeros((input_size, input_size, 3), dtype=np.uint8)
    if x1 > x0 and y1 > y0:
        region = cv2.warpAffine(image, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        region = jitter_colors(region, rng, color_jitter) if color_jitter else region
        if degrade and rng.random() < degrade:
            region = degrade_camera(region, rng)
        canvas[y0:y1, x0:x1] = region
    return canvas


def _empty_targets(map_size: int):
    return (np.zeros((map_size, map_size, 1), np.float32), np.zeros((map_size, map_size, network_io.GEO_CHANNELS), np.float32),
            np.ones((map_size, map_size, 1), np.float32))


def try_example(sample: Sample, rng: np.random.Generator, config: AugmentConfig) -> dict | None:
    """One augmented example, or None where EAST-tf2 would move on to the next image (no crop found).

    Raises DataError when the image cannot be read."""
    image_hw = sample.image_hw
    if image_hw is None:
        image_hw, reason = inspect_image(Path(sample.image_path))
        if image_hw is None:
            raise DataError(f"{sample.image_path}: {reason}")
    plan = _plan_crop(sample, image_hw, rng, config)
    if plan is None:
        return None
    size = config.input_size
    ratio = size / plan.side
    crop_origin = np.array(plan.crop_box[:2], dtype=np.float64)
    quads = ((sample.quads[plan.selected].astype(np.float64) * plan.scale_xy - crop_origin + plan.shift_xy)
             * ratio).astype(np.float32)
    dont_care = sample.dont_care[plan.selected]
    image_bgr = _render(sample.image_path, image_hw, plan, size, rng, config.color_jitter, config.degrade)
    if len(quads):
        score_map, geo_map, training_mask = geometry.make_rbox_targets(
            quads, dont_care, (size, size), min_text_size=config.min_text_size)
    else:
        score_map, geo_map, training_mask = _empty_targets(size // network_io.OUTPUT_STRIDE)
    return {"image_bgr": image_bgr, "score_map": score_map, "geo_map": geo_map, "training_mask": training_mask,
            "quads": quads, "dont_care": dont_care}


def write_rgb(image_bgr: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[...] = the image's pixels in RGB order (uint8); the network's scaling to [-1, 1]
    happens on the device, in ``model.training_model``."""
    np.copyto(out, image_bgr[..., ::-1])
    return out


def make_example(sample: Sample, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> dict:
    """One augmented training example from one sample (EAST-tf2's augmentation).

    Random rescale (random_scale, +-10 % per axis), random crop (text-free with probability
    background_ratio, else one that cuts no text), random placement in a square padded to at
    least input_size, resize to input_size, BGR -> RGB. Where EAST-tf2 would
    give up on the image (no crop found), this redraws with the same rng.

    Args:
        sample: the image and its quads.
        rng: the random generator; the result is a pure function of its state.
        config: AugmentConfig.

    Returns:
        dict with image uint8 (S, S, 3) RGB pixels, score_map float32 (S/4, S/4, 1),
        geo_map float32 (S/4, S/4, 5), training_mask float32 (S/4, S/4, 1), quads float32
        (N, 4, 2) in input px (clockwise from top-left) and dont_care bool (N,), S = input_size.

    Raises:
        DataError: the image cannot be read, or no crop was found in MAX_DRAWS_PER_SLOT draws.
    """
    for _ in range(MAX_DRAWS_PER_SLOT):
        example = try_example(sample, rng, config)
        if example is not None:
            image_bgr = example.pop("image_bgr")
            example["image"] = write_rgb(image_bgr, np.empty(image_bgr.shape, np.uint8))
            return example
    raise DataError(f"{sample.image_path}: no usable crop in {MAX_DRAWS_PER_SLOT} draws")


def training_view_sides(samples, config: AugmentConfig, draws: int = SCALE_DRAWS, seed: int = 0) -> np.ndarray:
    """The longer side, in network px, of the whole image behind each of ``draws`` random text crops.

    Each crop's total scale (random rescale, then resize of the padded square to input_size) applied
    to its image's longer side: the ``max_side_len`` at which a test image shows its text at the size
    this crop showed it to the network. Only the crop plans are drawn (no image is read), all of them
    text crops (``background_ratio`` 0: a text-free crop shows no text size); samples without a known
    image size or a box to care about, and crops that find no text, are left out.

    Returns:
        float64 (K,), K <= draws (K = 0 when no sample has text).
    """
    usable = [sample for sample in samples if sample.image_hw is not None and (~sample.dont_care).any()]
    if not usable:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    text_only = replace(config, background_ratio=0.0)
    sides = []
    for _ in range(draws):
        sample = usable[int(rng.integers(len(usable)))]
        plan = _plan_crop(sample, sample.image_hw, rng, text_only)
        if plan is None or plan.selected.size == 0:
            continue
        height, width = sample.image_hw
        sides.append(max(height * plan.scale_xy[1], width * plan.scale_xy[0]) * config.input_size / plan.side)
    return np.asarray(sides, dtype=np.float64)


def implied_max_side_len(samples, config: AugmentConfig, draws: int = SCALE_DRAWS, seed: int = 0) -> int | None:
    """The eval ``max_side_len`` at which photos like the training ones show text at its median training size.

    The median of ``training_view_sides``, rounded to a multiple of network_io.SIZE_MULTIPLE (at
    least one); None when no crop shows text. A pure function of (samples, config, draws, seed).
    """
    sides = training_view_sides(samples, config, draws, seed)
    if not sides.size:
        return None
    multiple = network_io.SIZE_MULTIPLE
    return max(multiple, int(round(float(np.median(sides)) / multiple)) * multiple)
