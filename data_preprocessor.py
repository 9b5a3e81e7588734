"""Training data for EAST: load and validate a folder of images + annotations, split it; the data CLI.

Library part (numpy/OpenCV only, no flags, no printing):

- ``load_dataset``: images + annotations (any format in ``annotation_loaders.ANNOTATION_FORMATS``) ->
  ``Sample``s with quads clockwise from the top-left, plus every problem met (file, line, reason).
- ``split_dataset``: a deterministic train/test copy of a folder.

The rest of the training data path lives below and is re-exported here for callers of this module:
``samples`` (Sample, DataError, DatasetReport), ``augmentation`` (AugmentConfig, make_example:
EAST-tf2's random rescale, crop, pad and resize) and ``batch_stream`` (make_batch, BatchStream:
batches that are a pure function of (seed, step, slot), built in worker processes).

CLI (``main``): ``python data_preprocessor.py stats --data_path DIR [--annotation_format F] [--json]``
and ``python data_preprocessor.py split --data_path DIR --train_dir DIR --test_dir DIR [--ratio 0.8]
[--seed 0] [--overwrite]``.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Collection

import numpy as np

import geometry
import path_guard
from annotation_loaders import (ANNOTATION_FORMATS, AUTO_FORMAT, IMAGE_EXTENSIONS, AnnotationFormat, Problem,
                                detect_annotation_format, format_choices, images_in_folder)
from augmentation import AugmentConfig, make_example
from batch_stream import BatchStream, make_batch
from network_io import TARGET_CHANNELS
from samples import DataError, DatasetReport, Sample, inspect_image

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATION_FORMATS", "AugmentConfig", "BatchStream", "DataError", "DatasetReport", "Problem", "Sample",
    "TARGET_CHANNELS", "load_dataset", "make_batch", "make_example", "rehearsal_subset", "split_dataset",
]

# Sub-folders searched when a data folder holds no images itself (YOLO and Pascal VOC layouts).
IMAGE_SUBFOLDERS = ("images", "JPEGImages")
ANNOTATION_EXTENSIONS = (".txt", ".xml", ".json")
# _validate_boxes' reason for a box with no pixel in the image: dropped, but its image stays usable.
OUTSIDE_REASON = "outside the image"


# --------------------------------------------------------------------------- #
# loading and validation
# --------------------------------------------------------------------------- #
def _images_folder(data_path: Path) -> Path:
    if images_in_folder(data_path):
        return data_path
    for name in IMAGE_SUBFOLDERS:
        if (data_path / name).is_dir() and images_in_folder(data_path / name):
            return data_path / name
    return data_path


def _validate_boxes(boxes, image_hw, file_name: str):
    """Checks, clips and orders raw boxes.

    Returns:
        (quads float32 (N, 4, 2) clockwise from top-left, dont_care bool (N,), texts, problems,
        fixed, counts): problems are the dropped boxes, fixed the clipped or reordered ones, counts
        a Counter of dropped_boxes, clipped, reordered.
    """
    height, width = image_hw
    quads, dont_care, texts, problems, fixed = [], [], [], [], []
    counts = collections.Counter()
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
                                        f"{OUTSIDE_REASON} (nothing left after clipping to {width}x{height}): "
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
    return quads, np.asarray(dont_care, dtype=bool), tuple(texts), problems, fixed, counts


def _format_quad(quad: np.ndarray) -> str:
    return "[" + ", ".join(f"{value:g}" for value in np.asarray(quad).ravel()) + "]"


def _find_images(root: Path) -> tuple[Path, list[Path]]:
    """The folder that holds data_path's images, and the images; DataError when there are none."""
    if not root.is_dir():
        raise DataError(f"data_path {str(root)!r} is not a folder")
    folder = _images_folder(root)
    image_paths = images_in_folder(folder)
    if not image_paths:
        raise DataError(f"no images ({', '.join(ext.lstrip('.') for ext in IMAGE_EXTENSIONS)}) in {str(root)!r}")
    return folder, image_paths


def _resolve_format(annotation_format: str, folder: Path, image_paths: list[Path],
                    hint: str = "") -> tuple[str, AnnotationFormat, str]:
    """(format name, its AnnotationFormat, the auto-detection sentence or "") for a requested format.

    Raises:
        DataError: "auto" finds no known format (the message ends with ``hint``), or an unknown name.
    """
    detection = ""
    if annotation_format == AUTO_FORMAT:
        annotation_format, detection = detect_annotation_format(image_paths)
        if annotation_format is None:
            raise DataError(f"cannot detect the annotation format of {str(folder)!r}: {detection}{hint}")
    if annotation_format not in ANNOTATION_FORMATS:
        raise DataError(f"annotation_format must be one of {', '.join(format_choices())}, "
                        f"got {annotation_format!r}")
    return annotation_format, ANNOTATION_FORMATS[annotation_format], detection


def _other_format_annotation(image_path: Path, annotation_format: str) -> tuple[str, Path] | None:
    """(format name, file) of an annotation file another format would read for this image, or None."""
    for name, other in ANNOTATION_FORMATS.items():
        if name in (annotation_format, "ccpd"):
            continue
        found = other.find_annotation(image_path)
        if found is not None:
            return name, found
    return None


def _load_sample(image_path: Path, image_hw, annotation_format: str, fmt: AnnotationFormat,
                 skip_unannotated: bool, yolo_classes):
    """(Sample or None when the image is skipped, problems, fixed, counts) for one readable image.

    An image is skipped (never used as background, which would teach "no text here" where its text
    is) when its annotation holds a rejected box or line, or when it has no annotation file of
    ``annotation_format`` but one of another format.
    """
    counts = collections.Counter()
    fixed = []
    annotation_path = fmt.find_annotation(image_path)
    if annotation_path is None and annotation_format != "ccpd":
        other = _other_format_annotation(image_path, annotation_format)
        if other is not None:
            counts["skipped_images"] += 1
            return None, [Problem(str(image_path), None,
                                  f"image skipped: no {annotation_format} annotation ({fmt.expected_file}) but a "
                                  f"{other[0]} file {other[1].name}; a folder mixing formats, or the wrong "
                                  f"--annotation_format")], fixed, counts
        counts["unannotated"] += 1
        if skip_unannotated:
            counts["skipped_images"] += 1
            return None, [], fixed, counts
        fixed.append(Problem(str(image_path), None,
                             f"no annotation file ({fmt.expected_file}), used as a background-only image"))
        boxes, problems = [], []
    else:
        boxes, problems = fmt.parse(annotation_path, image_path, image_hw, yolo_classes)
    quads, dont_care, texts, dropped, repaired, box_counts = _validate_boxes(
        boxes, image_hw, str(annotation_path or image_path))
    rejected = problems + [item for item in dropped if not item.reason.startswith(OUTSIDE_REASON)]
    if rejected:
        # Without the rejected box its text would be trained as background ("no text here").
        counts["skipped_images"] += 1
        counts["dropped_boxes"] += box_counts["dropped_boxes"]
        return None, problems + dropped + [Problem(str(image_path), None, (
            f"image skipped: {len(rejected)} rejected box(es) or line(s) in its annotation; as background "
            "their text would teach 'no text here'"))], fixed, counts
    counts.update(box_counts)
    counts.update(images=1, boxes=len(quads), dont_care=int(dont_care.sum()))
    sample = Sample(str(image_path), None if annotation_path is None else str(annotation_path),
                    quads, dont_care, texts, tuple(image_hw))
    return sample, problems + dropped, fixed + repaired, counts


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
    left), counter-clockwise ones reordered. An image with a malformed line or a rejected quad
    (non-finite, self-intersecting, degenerate) is skipped whole, as is one with no annotation
    file of this format but one of another format: as background its text would teach "no text
    here". Each is recorded in the report (and logged once in summary).

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
    annotation_format, fmt, detection = _resolve_format(annotation_format, folder, image_paths,
                                                        "; pass --annotation_format")
    if detection:
        log.info("%s: %s", folder, detection)
    yolo_classes = None if yolo_classes is None else frozenset(int(value) for value in yolo_classes)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as executor:
        inspected = list(executor.map(inspect_image, image_paths))

    counts = collections.Counter(images=0, boxes=0, dont_care=0, skipped_images=0, dropped_boxes=0,
                                 unannotated=0, clipped=0, reordered=0)
    samples, problems, fixed = [], [], []
    for image_path, (image_hw, reason) in zip(image_paths, inspected):
        if image_hw is None:
            problems.append(Problem(str(image_path), None, reason))
            counts["skipped_images"] += 1
            continue
        sample, sample_problems, sample_fixed, sample_counts = _load_sample(
            image_path, image_hw, annotation_format, fmt, skip_unannotated, yolo_classes)
        samples += [sample] if sample is not None else []
        problems += sample_problems
        fixed += sample_fixed
        counts.update(sample_counts)
    report = DatasetReport(samples, annotation_format, problems, dict(counts), fixed, detection)
    _check_report(report, root, strict)
    return report


def _check_report(report: DatasetReport, root: Path, strict: bool) -> None:
    """Raises DataError for strict mode with problems or no usable sample; logs the problems once."""
    problems, fixed = report.problems, report.fixed
    if strict and (problems or fixed):
        items = problems + fixed
        listed = "; ".join(str(item) for item in items[:5])
        more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
        raise DataError(f"{len(items)} problem(s) in {str(root)!r} with --strict: {listed}{more}")
    if problems or fixed:
        log.warning("%s: %s", root, report.summary(max_items=5))
    if not report.samples:
        raise DataError(f"no usable images in {str(root)!r}: {len(problems)} problem(s), first: {problems[0]}"
                        if problems else f"no usable images in {str(root)!r}")



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


def rehearsal_subset(main_count: int, rehearsal_count: int, share: float, seed: int) -> np.ndarray:
    """Which images of a rehearsal folder join a fine-tune's own ``main_count`` images.

    As many as make them ``share`` of all training images, ``main_count * share / (1 - share)``
    rounded (0.5: as many as the main folder has), at most all ``rehearsal_count``; chosen by a
    permutation seeded with ``seed``, so a resumed run draws the same ones.

    Returns:
        int64 (K,) ascending indices into the rehearsal folder's samples.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), got {share}")
    wanted = min(rehearsal_count, round(main_count * share / (1.0 - share)))
    return np.sort(np.random.default_rng(seed).permutation(rehearsal_count)[:wanted]).astype(np.int64)


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
        DataError: bad ratio, no images, a target that is, holds or lies inside data_path, or a non-empty target without overwrite.
    """
    if not 0 < ratio <= 1:
        raise DataError(f"ratio must be in (0, 1], got {ratio}")
    root = Path(data_path)
    folder, image_paths = _find_images(root)
    targets = [Path(train_dir), Path(test_dir)]
    try:
        path_guard.check_outputs_apart({"--train_dir": targets[0], "--test_dir": targets[1]},
                                       {"--data_path": root, "the image folder": folder})
    except path_guard.PathOverlapError as error:
        raise DataError(str(error)) from None
    if targets[0].resolve() == targets[1].resolve():
        raise DataError("train_dir and test_dir must differ")
    annotation_format, fmt, detection = _resolve_format(annotation_format, folder, image_paths)
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
                        f"one of {', '.join(format_choices())}")
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
