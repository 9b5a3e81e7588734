"""Training data for EAST: load and validate a folder, augment as EAST-tf2 does, and batch in parallel.

Library part (numpy/OpenCV only, no flags, no printing):

- ``load_dataset``: images + annotations (any format in ``annotation_loaders.ANNOTATION_FORMATS``) ->
  ``Sample``s with quads clockwise from the top-left, plus every problem met (file, line, reason).
- ``make_example``: one augmented training example (EAST-tf2's random rescale, crop, pad and resize).
- ``make_batch`` / ``BatchStream``: batches that are a pure function of (seed, step, slot), built in
  worker processes, identical whatever the number of workers.

CLI (``main``): ``python data_preprocessor.py stats --data_path DIR [--annotation_format F] [--json]``
and ``python data_preprocessor.py split --data_path DIR --train_dir DIR --test_dir DIR [--ratio 0.8]
[--seed 0] [--overwrite]``.
"""
from __future__ import annotations

import collections
import functools
import itertools
import json
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import Collection, Iterator, Sequence

import cv2
import numpy as np

import geometry
from annotation_loaders import (ANNOTATION_FORMATS, AUTO_FORMAT, IMAGE_EXTENSIONS, Problem, detect_format,
                                list_images)

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATION_FORMATS", "AugmentConfig", "BatchStream", "DataError", "DatasetReport", "Problem", "Sample",
    "TARGET_CHANNELS", "load_dataset", "make_batch", "make_example", "split_dataset",
]

TARGET_CHANNELS = 7  # score, 5 geo (top, right, bottom, left, angle), training mask
# Sub-folders searched when a data folder holds no images itself (YOLO and Pascal VOC layouts).
IMAGE_SUBFOLDERS = ("images", "JPEGImages")
# EAST-tf2's crop_area gives up after this many random tries.
CROP_MAX_TRIES = 50
# A batch slot draws at most this many images before giving up (unreadable images, failed crops).
MAX_DRAWS_PER_SLOT = 100
ANNOTATION_EXTENSIONS = (".txt", ".xml", ".json")


class DataError(ValueError):
    """Bad training data or arguments, with a message meant for the user."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One training image and its boxes.

    quads: float32 (N, 4, 2), pixel xy in the original image, clockwise from the top-left.
    dont_care: bool (N,), True for ``###`` boxes (masked out of the loss).
    image_hw: (height, width) of the image as validated, or None when unknown (read at augmentation).
    """

    image_path: str
    annotation_path: str | None
    quads: np.ndarray
    dont_care: np.ndarray
    texts: tuple[str, ...]
    image_hw: tuple[int, int] | None = None


@dataclass
class DatasetReport:
    """What load_dataset found.

    samples: the usable images. problems: what was skipped or dropped (image, line or box).
    fixed: what was repaired and kept (clipped quads, reordered points, images used as background).
    counts: images, boxes, dont_care, skipped_images, dropped_boxes, unannotated, clipped, reordered.
    """

    samples: list[Sample]
    format: str
    problems: list[Problem]
    counts: dict
    fixed: list[Problem] = field(default_factory=list)
    detection: str = ""

    def summary(self, max_items: int = 20) -> str:
        """A few lines for people: counts, then what was skipped or fixed and why."""
        counts = self.counts
        lines = [
            f"{counts['images']} images, {counts['boxes']} boxes ({counts['dont_care']} don't care), "
            f"format {self.format}" + (f"; {self.detection}" if self.detection else ""),
        ]
        for title, items in (("skipped", self.problems), ("fixed", self.fixed)):
            if items:
                reasons = collections.Counter(_reason_kind(item.reason) for item in items)
                lines.append(f"{title} {len(items)}: " + ", ".join(f"{n} {kind}" for kind, n in reasons.most_common()))
                lines += [f"  {item}" for item in items[:max_items]]
                if len(items) > max_items:
                    lines.append(f"  ... and {len(items) - max_items} more")
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


# --------------------------------------------------------------------------- #
# loading and validation
# --------------------------------------------------------------------------- #
def _images_folder(data_path: Path) -> Path:
    if list_images(data_path):
        return data_path
    for name in IMAGE_SUBFOLDERS:
        if (data_path / name).is_dir() and list_images(data_path / name):
            return data_path / name
    return data_path


def _jpeg_is_complete(data: np.ndarray) -> bool:
    """Whether a JPEG's last scan is followed by an end-of-image marker (no truncation)."""
    raw = data.tobytes()
    return raw.rfind(b"\xff\xd9") > raw.rfind(b"\xff\xda")


def _inspect_image(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(height, width) of a decodable image, or (None, the reason it is unusable)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        return None, f"unreadable image ({error.strerror})"
    if data.size == 0:
        return None, "unreadable image (empty file)"
    if path.suffix.lower() in (".jpg", ".jpeg") and data[:2].tobytes() == b"\xff\xd8" and not _jpeg_is_complete(data):
        return None, "truncated image (JPEG data ends before its end marker)"
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None, f"unreadable image (not a valid {path.suffix.lstrip('.').lower()} file)"
    return image.shape[:2], None


def _validate_boxes(boxes, image_hw, file_name, problems, fixed, counts):
    """Validated (quads float32 (N,4,2), dont_care, texts) from raw boxes; records what it drops or fixes."""
    height, width = image_hw
    quads, dont_care, texts = [], [], []
    for box in boxes:
        quad = box.quad
        reason = geometry.quad_problem(quad, image_hw)
        if reason is not None:
            problems.append(Problem(file_name, box.line, f"{reason}: {_format_quad(quad)}"))
            counts["dropped_boxes"] += 1
            continue
        if quad[:, 0].min() < 0 or quad[:, 1].min() < 0 or quad[:, 0].max() > width - 1 or quad[:, 1].max() > height - 1:
            clipped = geometry.clip_quads(quad[None], image_hw)[0].astype(np.float64)
            if geometry.quad_problem(clipped) is not None:
                problems.append(Problem(file_name, box.line,
                                        f"outside the image (nothing left after clipping to {width}x{height}): "
                                        f"{_format_quad(quad)}"))
                counts["dropped_boxes"] += 1
                continue
            fixed.append(Problem(file_name, box.line, f"partly outside the image, clipped: {_format_quad(quad)}"))
            counts["clipped"] += 1
            quad = clipped
        if geometry.polygon_signed_area(quad) < 0:
            fixed.append(Problem(file_name, box.line, "points counter-clockwise, reordered"))
            counts["reordered"] += 1
        quads.append(geometry.order_clockwise_from_top_left(quad))
        dont_care.append(box.dont_care)
        texts.append(box.text)
    quads = np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2)
    return quads, np.asarray(dont_care, dtype=bool), tuple(texts)


def _format_quad(quad: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:g}" for value in np.asarray(quad).ravel()) + "]"


def _find_images(root: Path) -> tuple[Path, list[Path]]:
    """The folder that holds data_path's images, and the images; DataError when there are none."""
    if not root.is_dir():
        raise DataError(f"data_path {str(root)!r} is not a folder")
    folder = _images_folder(root)
    image_paths = list_images(folder)
    if not image_paths:
        raise DataError(f"no images ({', '.join(ext.lstrip('.') for ext in IMAGE_EXTENSIONS)}) in {str(root)!r}")
    return folder, image_paths


def load_dataset(
    data_path: str | os.PathLike,
    annotation_format: str = AUTO_FORMAT,
    *,
    strict: bool = False,
    skip_unannotated: bool = False,
    yolo_classes: Collection[int] | None = None,
) -> DatasetReport:
    """Loads and validates every image of a folder and its annotations.

    Images are jpg/jpeg/png/bmp (any case) directly in data_path, or in its ``images/`` or
    ``JPEGImages/`` sub-folder when data_path holds none. Unreadable or truncated images and
    malformed lines are skipped, quads outside the image are clipped (dropped when nothing is
    left), degenerate and self-intersecting quads are dropped, counter-clockwise ones reordered;
    each is recorded in the report (and logged once in summary).

    Args:
        data_path: the folder.
        annotation_format: a key of ANNOTATION_FORMATS, or "auto" to detect it from the files.
        strict: raise DataError on the first skipped, dropped or fixed item instead of going on.
        skip_unannotated: drop images without an annotation file instead of using them as
            background-only images.
        yolo_classes: for the yolo format, the class ids to keep (None keeps all).

    Returns:
        DatasetReport; samples in file-name order, quads float32 (N, 4, 2) clockwise from top-left.

    Raises:
        DataError: no such folder, no images, unknown or undetectable format, or (strict) any problem.
    """
    root = Path(data_path)
    folder, image_paths = _find_images(root)
    detection = ""
    if annotation_format == AUTO_FORMAT:
        annotation_format, detection = detect_format(image_paths)
        if annotation_format is None:
            raise DataError(f"cannot detect the annotation format of {str(folder)!r}: {detection}; "
                            f"pass --annotation_format")
        log.info("%s: %s", folder, detection)
    if annotation_format not in ANNOTATION_FORMATS:
        raise DataError(f"annotation_format must be one of {', '.join([AUTO_FORMAT, *ANNOTATION_FORMATS])}, "
                        f"got {annotation_format!r}")
    fmt = ANNOTATION_FORMATS[annotation_format]
    yolo_classes = None if yolo_classes is None else frozenset(int(value) for value in yolo_classes)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as executor:
        inspected = list(executor.map(_inspect_image, image_paths))

    counts = collections.Counter(images=0, boxes=0, dont_care=0, skipped_images=0, dropped_boxes=0,
                                 unannotated=0, clipped=0, reordered=0)
    samples, problems, fixed = [], [], []
    for image_path, (image_hw, reason) in zip(image_paths, inspected):
        if image_hw is None:
            problems.append(Problem(str(image_path), None, reason))
            counts["skipped_images"] += 1
            continue
        annotation_path = fmt.find_annotation(image_path)
        if annotation_path is None and annotation_format != "ccpd":
            counts["unannotated"] += 1
            if skip_unannotated:
                counts["skipped_images"] += 1
                continue
            fixed.append(Problem(str(image_path), None,
                                 f"no annotation file ({fmt.expected_file}), used as a background-only image"))
            boxes, parse_problems = [], []
        else:
            boxes, parse_problems = fmt.parse(annotation_path, image_path, image_hw, yolo_classes)
        problems += parse_problems
        file_name = str(annotation_path or image_path)
        if parse_problems and not boxes:
            # Nothing usable in a non-empty annotation: as background the image would teach "no text here".
            problems.append(Problem(str(image_path), None, "image skipped: its annotation has no usable box"))
            counts["skipped_images"] += 1
            continue
        quads, dont_care, texts = _validate_boxes(boxes, image_hw, file_name, problems, fixed, counts)
        samples.append(Sample(str(image_path), None if annotation_path is None else str(annotation_path),
                              quads, dont_care, texts, tuple(image_hw)))
        counts["images"] += 1
        counts["boxes"] += len(quads)
        counts["dont_care"] += int(dont_care.sum())

    report = DatasetReport(samples, annotation_format, problems, dict(counts), fixed, detection)
    if strict and (problems or fixed):
        items = problems + fixed
        listed = "; ".join(str(item) for item in items[:5])
        more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
        raise DataError(f"{len(items)} problem(s) in {str(root)!r} with --strict: {listed}{more}")
    if problems or fixed:
        log.warning("%s: %s", root, report.summary(max_items=5))
    if not samples:
        raise DataError(f"no usable images in {str(root)!r}: {len(problems)} problem(s), first: {problems[0]}"
                        if problems else f"no usable images in {str(root)!r}")
    return report


# --------------------------------------------------------------------------- #
# augmentation (EAST-tf2's generator, computed in source coordinates)
# --------------------------------------------------------------------------- #
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
    """

    input_size: int = 512
    background_ratio: float = 3 / 8
    random_scale: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    min_crop_side_ratio: float = 0.1
    max_image_large_side: int = 1280
    max_text_size: int = 800
    min_text_size: int = 10

    def __post_init__(self):
        if self.input_size <= 0 or self.input_size % geometry.OUTPUT_STRIDE:
            raise ValueError(f"input_size must be a positive multiple of {geometry.OUTPUT_STRIDE}, got {self.input_size}")
        if not 0 <= self.background_ratio <= 1:
            raise ValueError(f"background_ratio must be in [0, 1], got {self.background_ratio}")
        if not self.random_scale or min(self.random_scale) <= 0.1:
            raise ValueError(f"random_scale must be scales above 0.1, got {self.random_scale}")


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
    covered_y = np.zeros(height + 2 * pad_h, dtype=bool)
    covered_x = np.zeros(width + 2 * pad_w, dtype=bool)
    rounded = np.round(quads).astype(np.int64)
    for quad in rounded:
        covered_x[quad[:, 0].min() + pad_w:quad[:, 0].max() + pad_w] = True
        covered_y[quad[:, 1].min() + pad_h:quad[:, 1].max() + pad_h] = True
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
    """Draws EAST-tf2's random choices for one sample; None where EAST-tf2 moves on to another image."""
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


def _render(image_path: str, image_hw, plan: _CropPlan, input_size: int) -> np.ndarray:
    """The augmented image, uint8 BGR (S, S, 3): one decode and one affine warp of the crop region only."""
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
        canvas[y0:y1, x0:x1] = cv2.warpAffine(image, warp, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_REPLICATE)
    return canvas


def _empty_targets(map_size: int):
    return (np.zeros((map_size, map_size, 1), np.float32), np.zeros((map_size, map_size, 5), np.float32),
            np.ones((map_size, map_size, 1), np.float32))


def _try_example(sample: Sample, rng: np.random.Generator, config: AugmentConfig) -> dict | None:
    """One augmented example, or None where EAST-tf2 would move on to the next image (no crop found).

    Raises DataError when the image cannot be read."""
    image_hw = sample.image_hw
    if image_hw is None:
        image_hw, reason = _inspect_image(Path(sample.image_path))
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
    image_bgr = _render(sample.image_path, image_hw, plan, size)
    if len(quads):
        score_map, geo_map, training_mask = geometry.make_rbox_targets(
            quads, dont_care, (size, size), min_text_size=config.min_text_size)
    else:
        score_map, geo_map, training_mask = _empty_targets(size // geometry.OUTPUT_STRIDE)
    return {"image_bgr": image_bgr, "score_map": score_map, "geo_map": geo_map, "training_mask": training_mask,
            "quads": quads, "dont_care": dont_care}


def _rgb_into(image_bgr: np.ndarray, out: np.ndarray) -> np.ndarray:
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
        example = _try_example(sample, rng, config)
        if example is not None:
            image_bgr = example.pop("image_bgr")
            example["image"] = _rgb_into(image_bgr, np.empty(image_bgr.shape, np.uint8))
            return example
    raise DataError(f"{sample.image_path}: no usable crop in {MAX_DRAWS_PER_SLOT} draws")


# --------------------------------------------------------------------------- #
# batches
# --------------------------------------------------------------------------- #
@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, count]).permutation(count)


def _batch_shapes(batch_size: int, config: AugmentConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    map_size = config.input_size // geometry.OUTPUT_STRIDE
    return ((batch_size, config.input_size, config.input_size, 3),
            (batch_size, map_size, map_size, TARGET_CHANNELS))


def _batch_layout(batch_size: int, config: AugmentConfig) -> tuple[int, int]:
    """(offset of the targets, total bytes) of one batch in a shared block: uint8 images, padded
    to 64 bytes so that the float32 targets after them are aligned."""
    images_shape, targets_shape = _batch_shapes(batch_size, config)
    targets_offset = -(-math.prod(images_shape) // 64) * 64
    return targets_offset, targets_offset + math.prod(targets_shape) * 4


def _build_batch(samples: Sequence[Sample], seed: int, step: int, batch_size: int, config: AugmentConfig,
                 out: tuple[np.ndarray, np.ndarray] | None = None):
    """(images, targets, problems) for one step, written into out when given; see make_batch."""
    count = len(samples)
    if out is None:
        images_shape, targets_shape = _batch_shapes(batch_size, config)
        out = np.empty(images_shape, np.uint8), np.empty(targets_shape, np.float32)
    images, targets = out
    problems = []
    for slot in range(batch_size):
        # Each image once per epoch, in a seeded order; retries draw from the slot's own generator.
        position = step * batch_size + slot
        index = int(_epoch_order(seed, position // count, count)[position % count])
        rng = np.random.default_rng([seed, step, slot])
        for _ in range(MAX_DRAWS_PER_SLOT):
            try:
                example = _try_example(samples[index], rng, config)
            except DataError as error:
                problems.append(Problem(samples[index].image_path, None, str(error)))
                example = None
            if example is not None:
                break
            index = int(rng.integers(count))
        else:
            raise DataError(f"no usable training example after {MAX_DRAWS_PER_SLOT} draws for step {step}, "
                            f"slot {slot}" + (f"; last problem: {problems[-1]}" if problems else ""))
        _rgb_into(example["image_bgr"], images[slot])
        targets[slot, ..., 0:1] = example["score_map"]
        targets[slot, ..., 1:6] = example["geo_map"]
        targets[slot, ..., 6:7] = example["training_mask"]
    return images, targets, problems


def make_batch(samples: Sequence[Sample], seed: int, step: int, batch_size: int,
               config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of one global step: a pure function of (seed, step, slot), no hidden state.

    Slot i of step s takes image number ``s * batch_size + i`` of a seeded per-epoch permutation
    and augments it with ``np.random.default_rng([seed, s, i])``; an unreadable image or a failed
    crop moves on to another image drawn from that same generator (logged, not fatal).

    Returns:
        images uint8 (B, S, S, 3) RGB pixels (a quarter of float32's bytes to copy and send to
        the device; ``model.training_model`` scales them to [-1, 1] there); targets float32
        (B, S/4, S/4, 7):
        [0] score_map, [1:6] geo_map (top, right, bottom, left px, angle rad), [6] training_mask.

    Raises:
        ValueError: empty samples or batch_size < 1. DataError: a slot found no usable image.
    """
    _check_batch_args(samples, batch_size)
    images, targets, problems = _build_batch(samples, seed, step, batch_size, config)
    for problem in problems:
        log.warning("skipped while building step %d: %s", step, problem)
    return images, targets


def _check_batch_args(samples, batch_size):
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class _SharedBatch:
    """A batch-sized block of shared memory: workers write a batch into it, the consumer copies it out.

    Sending a 512 px batch of 8 (10 MB) back through a Pool's pipe costs more than building it;
    through shared memory only the list of problems travels.
    """

    def __init__(self, batch_size: int, config: AugmentConfig, name: str | None = None):
        self.shapes = _batch_shapes(batch_size, config)
        self.targets_offset, nbytes = _batch_layout(batch_size, config)
        self.memory = (shared_memory.SharedMemory(create=True, size=nbytes) if name is None
                       else shared_memory.SharedMemory(name=name))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.ndarray(self.shapes[0], np.uint8, buffer=self.memory.buf),
                np.ndarray(self.shapes[1], np.float32, buffer=self.memory.buf, offset=self.targets_offset))

    def release(self, unlink: bool) -> None:
        self.memory.close()
        if unlink:
            self.memory.unlink()


_WORKER_STATE: dict = {}


def _init_worker(samples, seed, batch_size, config):
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the stream (and
    # so the workers); a worker that raised KeyboardInterrupt would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One OpenCV thread per worker process: the parallelism comes from the processes.
    cv2.setNumThreads(1)
    _WORKER_STATE.update(samples=samples, seed=seed, batch_size=batch_size, config=config, blocks={})


def _worker_batch(step: int, block_name: str | None):
    """Builds one step's batch: into the shared block block_name, returning the problems met, or
    (block_name None) returning (images, targets, problems)."""
    state = _WORKER_STATE
    arguments = (state["samples"], state["seed"], step, state["batch_size"], state["config"])
    if block_name is None:
        return _build_batch(*arguments)
    block = state["blocks"].get(block_name)
    if block is None:
        block = state["blocks"][block_name] = _SharedBatch(state["batch_size"], state["config"], block_name)
    images, targets = block.arrays()
    try:
        return _build_batch(*arguments, out=(images, targets))[2]
    finally:
        del images, targets  # no view may outlive the call, or the block cannot be closed


def _shared_memory_fits(nbytes: int) -> bool:
    """Whether /dev/shm (64 MB in some containers) has room: writing past it kills the writer with SIGBUS."""
    try:
        return shutil.disk_usage("/dev/shm").free > 1.25 * nbytes
    except OSError:
        return os.name == "nt"


class BatchStream:
    """Endless ordered batches for steps start_step, start_step + 1, ... built by worker processes.

    Batch k equals ``make_batch(samples, seed, start_step + k, batch_size, config)`` whatever
    nb_workers is, so a run resumed at step S sees the batches an uninterrupted run sees.

    Use ``for images, targets in stream``, ``next(stream)``, or ``model.fit(iter(stream),
    steps_per_epoch=...)`` (``iter(stream)`` is a plain Python generator of (x, y), which Keras 3
    accepts on every backend). Close it (or use ``with``) to stop the workers.

    Args:
        samples: from load_dataset.
        seed, start_step, batch_size, config: see make_batch.
        nb_workers: worker processes; 0 builds batches in this process.
        prefetch: batches requested ahead of the consumer (default 2 * nb_workers).
        mp_context: multiprocessing start method; default "forkserver" where available (safe with
            TensorFlow/JAX threads in the parent), else "spawn".

    Attributes:
        skipped: collections.Counter of "file: reason" -> how many times it was skipped.
    """

    def __init__(self, samples: Sequence[Sample], *, seed: int, start_step: int = 0, batch_size: int,
                 config: AugmentConfig = AugmentConfig(), nb_workers: int = 4, prefetch: int | None = None,
                 mp_context: str | None = None):
        _check_batch_args(samples, batch_size)
        if nb_workers < 0:
            raise ValueError(f"nb_workers must be >= 0, got {nb_workers}")
        self._samples = list(samples)
        self._seed, self._batch_size, self._config = int(seed), int(batch_size), config
        self._nb_workers = nb_workers
        self._prefetch = max(1, prefetch if prefetch is not None else 2 * nb_workers)
        if mp_context is None:
            mp_context = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._mp_context = mp_context
        self._executor = None
        self._closed = False
        self._blocks: list[_SharedBatch] = []
        self.skipped: collections.Counter = collections.Counter()
        self._generator = self._batches(int(start_step))

    def _record(self, problems):
        for problem in problems:
            key = str(problem)
            if key not in self.skipped:
                log.warning("skipped: %s", key)
            self.skipped[key] += 1

    def _batches(self, start_step: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._nb_workers == 0:
            yield from self._batches_in_process(start_step)
        else:
            yield from self._batches_from_workers(start_step)

    def _batches_in_process(self, start_step: int):
        for step in itertools.count(start_step):
            if self._closed:
                return
            images, targets, problems = _build_batch(self._samples, self._seed, step, self._batch_size, self._config)
            self._record(problems)
            yield images, targets

    def _batches_from_workers(self, start_step: int):
        block_nbytes = _batch_layout(self._batch_size, self._config)[1]
        if _shared_memory_fits(self._prefetch * block_nbytes):
            self._blocks = [_SharedBatch(self._batch_size, self._config) for _ in range(self._prefetch)]
        else:
            log.info("not enough room in /dev/shm for %d batches; workers send batches through pipes", self._prefetch)
        self._executor = ProcessPoolExecutor(
            self._nb_workers, mp_context=multiprocessing.get_context(self._mp_context), initializer=_init_worker,
            initargs=(self._samples, self._seed, self._batch_size, self._config))
        steps = itertools.count(start_step)
        slots = self._blocks or [None] * self._prefetch
        pending = collections.deque(
            (block, self._executor.submit(_worker_batch, next(steps), block and block.memory.name)) for block in slots)
        try:
            while not self._closed:
                block, future = pending.popleft()
                if block is None:
                    images, targets, problems = future.result()
                else:
                    problems = future.result()
                    images, targets = (array.copy() for array in block.arrays())
                self._record(problems)
                pending.append((block, self._executor.submit(_worker_batch, next(steps), block and block.memory.name)))
                yield images, targets
        finally:
            self.close()

    def __iter__(self):
        return self._generator

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return next(self._generator)

    def close(self) -> None:
        """Stops the worker processes and frees the shared memory (idempotent); the stream then ends."""
        self._closed = True
        executor, self._executor = getattr(self, "_executor", None), None
        if executor is not None:
            # Waits for the batches being built (they write into the shared blocks), drops the rest.
            executor.shutdown(wait=True, cancel_futures=True)
        blocks, self._blocks = getattr(self, "_blocks", []), []
        for block in blocks:
            block.release(unlink=True)

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down multiprocessing
            pass


# --------------------------------------------------------------------------- #
# split
# --------------------------------------------------------------------------- #
def _prepare_target(folder: Path, overwrite: bool) -> int:
    """Creates folder; refuses a non-empty one unless overwrite, then removes its old image/annotation files."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    existing = [path for path in folder.iterdir()]
    if existing and not overwrite:
        raise DataError(f"{str(folder)!r} is not empty ({len(existing)} entries); pass --overwrite to replace its "
                        f"images and annotations")
    removed = 0
    for path in existing:
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS + ANNOTATION_EXTENSIONS:
            path.unlink()
            removed += 1
    return removed


def split_dataset(data_path: str | os.PathLike, train_dir: str | os.PathLike, test_dir: str | os.PathLike, *,
                  ratio: float = 0.8, seed: int = 0, overwrite: bool = False,
                  annotation_format: str = AUTO_FORMAT) -> dict:
    """Copies image + annotation pairs into a train and a test folder, deterministically.

    Images are sorted by file name and permuted by ``np.random.default_rng(seed)``, so a seed
    gives the same split on any machine; the first round(ratio * N) go to train_dir. Annotation
    files are copied beside their image under their own name.

    Returns:
        dict with format, train_images, test_images, train_annotations, test_annotations.

    Raises:
        DataError: bad ratio, no images, a target inside data_path, or a non-empty target without overwrite.
    """
    if not 0 < ratio <= 1:
        raise DataError(f"ratio must be in (0, 1], got {ratio}")
    root = Path(data_path)
    folder, image_paths = _find_images(root)
    targets = [Path(train_dir), Path(test_dir)]
    for target in targets:
        if target.resolve() in (root.resolve(), folder.resolve()):
            raise DataError(f"target folder {str(target)!r} is the data folder")
    if targets[0].resolve() == targets[1].resolve():
        raise DataError("train_dir and test_dir must differ")
    detection = ""
    if annotation_format == AUTO_FORMAT:
        annotation_format, detection = detect_format(image_paths)
        if annotation_format is None:
            raise DataError(f"cannot detect the annotation format of {str(folder)!r}: {detection}")
    if annotation_format not in ANNOTATION_FORMATS:
        raise DataError(f"annotation_format must be one of {', '.join([AUTO_FORMAT, *ANNOTATION_FORMATS])}, "
                        f"got {annotation_format!r}")
    fmt = ANNOTATION_FORMATS[annotation_format]
    for target in targets:
        _prepare_target(target, overwrite)

    order = np.random.default_rng(seed).permutation(len(image_paths))
    train_count = math.floor(len(image_paths) * ratio + 0.5)
    result = {"format": annotation_format, "detection": detection}
    for name, target, indices in (("train", targets[0], order[:train_count]), ("test", targets[1], order[train_count:])):
        annotations = 0
        for index in sorted(indices):
            image_path = image_paths[index]
            shutil.copy2(image_path, target / image_path.name)
            annotation_path = fmt.find_annotation(image_path)
            if annotation_path is not None:
                shutil.copy2(annotation_path, target / annotation_path.name)
                annotations += 1
        result[f"{name}_images"] = len(indices)
        result[f"{name}_annotations"] = annotations
    return result


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
USAGE = """usage:
  python data_preprocessor.py stats --data_path DIR [--annotation_format F] [--json] [--strict]
  python data_preprocessor.py split --data_path DIR --train_dir DIR --test_dir DIR [--ratio 0.8] [--seed 0] [--overwrite]"""


def _define_flags() -> None:
    """Defines the CLI flags; called only when this file runs as a program."""
    from absl import flags

    flags.DEFINE_string("data_path", None, "folder of images and annotations")
    flags.DEFINE_string("annotation_format", AUTO_FORMAT,
                        f"one of {', '.join([AUTO_FORMAT, *ANNOTATION_FORMATS])}")
    flags.DEFINE_boolean("json", False, "stats: print one JSON object as the last line")
    flags.DEFINE_boolean("strict", False, "stats: any skipped, dropped or fixed item is an error")
    flags.DEFINE_boolean("skip_unannotated", False, "drop images without an annotation file")
    flags.DEFINE_list("yolo_classes", None, "yolo: class ids to keep (default all)")
    flags.DEFINE_string("train_dir", None, "split: output folder for the training part")
    flags.DEFINE_string("test_dir", None, "split: output folder for the test part")
    flags.DEFINE_float("ratio", 0.8, "split: fraction of images for training")
    flags.DEFINE_integer("seed", 0, "split: random seed")
    flags.DEFINE_boolean("overwrite", False, "split: replace the images and annotations in non-empty targets")


def _stats(flag_values) -> int:
    yolo_classes = None if flag_values.yolo_classes is None else [int(value) for value in flag_values.yolo_classes]
    report = load_dataset(flag_values.data_path, flag_values.annotation_format, strict=flag_values.strict,
                          skip_unannotated=flag_values.skip_unannotated, yolo_classes=yolo_classes)
    print(report.summary())
    if flag_values.json:
        counts = report.counts
        print(json.dumps({
            "images": counts["images"], "boxes": counts["boxes"], "dont_care": counts["dont_care"],
            "format": report.format,
            "skipped": [{"file": item.file, "line": item.line, "reason": item.reason} for item in report.problems],
            "fixed": [{"file": item.file, "line": item.line, "reason": item.reason} for item in report.fixed],
        }, ensure_ascii=False))
    return 0


def _split(flag_values) -> int:
    missing = [name for name in ("train_dir", "test_dir") if not getattr(flag_values, name)]
    if missing:
        raise DataError(f"split needs --{' and --'.join(missing)}")
    result = split_dataset(flag_values.data_path, flag_values.train_dir, flag_values.test_dir,
                           ratio=flag_values.ratio, seed=flag_values.seed, overwrite=flag_values.overwrite,
                           annotation_format=flag_values.annotation_format)
    if result["detection"]:
        print(result["detection"])
    print(f"train: {result['train_images']} images, {result['train_annotations']} annotation files -> "
          f"{flag_values.train_dir}")
    print(f"test: {result['test_images']} images, {result['test_annotations']} annotation files -> "
          f"{flag_values.test_dir}")
    return 0


def main(argv: list[str]) -> int:
    """Runs the ``stats`` or ``split`` sub-command; bad input gives one error line and exit code 1."""
    from absl import flags

    flag_values = flags.FLAGS
    commands = {"stats": _stats, "split": _split}
    if len(argv) != 2 or argv[1] not in commands:
        print(USAGE, file=sys.stderr)
        return 2
    if not flag_values.data_path:
        print(f"error: {argv[1]} needs --data_path\n{USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The report prints the problems itself; keep the library's warning off the terminal.
    logging.getLogger(__name__).setLevel(logging.ERROR)
    try:
        return commands[argv[1]](flag_values)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
