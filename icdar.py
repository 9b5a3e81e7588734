"""ICDAR 2015 text files and the official Task 4.1 (text localization) evaluation.

File format (one text region a line, UTF-8 with or without BOM, LF or CRLF)::

    x1,y1,x2,y2,x3,y3,x4,y4,transcription      ground truth (gt_<stem>.txt)
    x1,y1,x2,y2,x3,y3,x4,y4[,score]            detections   (res_<stem>.txt or <stem>.txt)

The transcription is everything after the eighth comma, so it may itself hold
commas; ``###`` marks a "don't care" region (the one rule, shared with training:
``annotation_loaders.is_dont_care``).

The evaluation reproduces the competition's own script (``script.py`` with
``rrc_evaluation_funcs.py``, IoU variant) figure for figure:

* a detection whose intersection with a don't-care region covers more than
  ``dont_care_area_threshold`` (0.5) of the detection's own area is ignored;
* ground truth and detections are matched one to one in the protocol's order:
  ground-truth regions in file order, and for each the first detection (file
  order) with IoU > ``iou_threshold`` (0.5) where neither is matched yet and
  neither is don't care;
* per image, recall = matched / care ground truth, precision = matched / care
  detections (0 when there are none); an image without care ground truth has
  recall 1 and precision 1, or 0 when it has care detections;
* the overall figures come from the summed counts over all images (recall and
  precision 0 when the sums are 0), hmean is their harmonic mean.

Deliberate differences from the official script, none of which changes a figure
for a submission the official script accepts: points given counter-clockwise
are evaluated like the same points clockwise (the official script rejects the
file; polygon areas do not depend on orientation); coordinates may be decimals
(the official script accepts integers only); a missing result file counts as
no detections; a self-intersecting or degenerate polygon overlaps nothing (the
official script's IoU falls back to 0 when shapely fails on it).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import shapely

import annotation_loaders
import atomic_io

log = logging.getLogger(__name__)

DONT_CARE_TEXT = annotation_loaders.DONT_CARE_TEXT
GT_PREFIX = "gt_"
RESULT_PREFIX = "res_"
TEXT_SUFFIX = ".txt"
IOU_THRESHOLD = 0.5
DONT_CARE_AREA_THRESHOLD = 0.5
NUM_COORDS = 8
ICDAR_FORMAT = "icdar2015"

_BOM = "\ufeff"


class IcdarFormatError(ValueError):
    """A file that is not valid ICDAR 2015 text; the message names file and line."""


@dataclass(frozen=True)
class Annotation:
    """The text regions of one image.

    Attributes:
        quads: float32 (N, 4, 2) pixel xy, in the order the file gives them.
        dont_care: bool (N,), True for ``###`` regions.
        texts: the N transcriptions.
    """

    quads: np.ndarray
    dont_care: np.ndarray
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Figures:
    """Task 4.1 figures: precision, recall, hmean and the counts they come from."""

    precision: float
    recall: float
    hmean: float
    matched: int
    gt_care: int
    det_care: int


@dataclass(frozen=True)
class ImageEvaluation(Figures):
    """Task 4.1 figures for one image (indices are file order)."""

    pairs: tuple[tuple[int, int], ...] = ()
    gt_dont_care: tuple[int, ...] = ()
    det_dont_care: tuple[int, ...] = ()
    invalid_gt: tuple[int, ...] = ()
    invalid_det: tuple[int, ...] = ()

    @property
    def all_correct(self) -> bool:
        """Every care ground-truth region matched and no unmatched care detection left."""
        return self.matched == self.gt_care and self.matched == self.det_care


@dataclass(frozen=True)
class Evaluation(Figures):
    """Overall Task 4.1 figures plus the per-image ones (keyed by image stem)."""

    per_image: dict[str, ImageEvaluation] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return len(self.per_image)

    @property
    def images_all_correct(self) -> int:
        return sum(result.all_correct for result in self.per_image.values())

    def summary(self) -> dict:
        """The stable JSON summary: precision, recall, hmean, images, images_all_correct."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
            "images": self.images,
            "images_all_correct": self.images_all_correct,
        }

    def summary_line(self) -> str:
        """``precision 0.xxx recall 0.xxx hmean 0.xxx; N/M images all correct``."""
        return (f"precision {self.precision:.3f} recall {self.recall:.3f} hmean {self.hmean:.3f}; "
                f"{self.images_all_correct}/{self.images} images all correct")


# --------------------------------------------------------------------------- reading


def decode_text(raw: bytes) -> str:
    """UTF-8 bytes to text without a leading BOM (undecodable bytes become U+FFFD, as the official script does)."""
    text = raw.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(_BOM) else text


def _lines(text: str):
    """(1-based line number, line) for every non-blank line; LF or CRLF."""
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.replace("\r", "")
        if line.strip():
            yield line_no, line


def _parse_line(line: str, source: str, line_no: int) -> tuple[list[float], str]:
    """(8 coordinates, unquoted transcription) of one line, by the project's one line parser."""
    quad, transcription = annotation_loaders.parse_quad_line(line, ",")
    if quad is None or not np.all(np.isfinite(quad)):
        reason = transcription if quad is None else "non-finite coordinates"
        raise IcdarFormatError(
            f"{source}:{line_no}: expected 8 comma-separated numbers x1,y1,...,x4,y4 first ({reason}), got {line!r}")
    return quad.ravel().tolist(), transcription


def parse_annotation_text(text: str, source: str = "<text>") -> Annotation:
    """Parse ICDAR 2015 ground truth: ``x1,y1,...,x4,y4,transcription`` a line.

    Args:
        text: file contents (a leading BOM is dropped; LF or CRLF).
        source: file name used in error messages.

    Returns:
        Annotation with quads float32 (N, 4, 2) in file order, dont_care (N,) bool and the
        transcriptions, unquoted as the official script does. Don't care is
        ``annotation_loaders.is_dont_care``: the transcription is exactly ``###`` (the official
        rule; training uses the same one). No lines: N = 0.

    Raises:
        IcdarFormatError: a line without 8 leading numbers, naming file and line.
    """
    if text.startswith(_BOM):
        text = text[1:]
    parsed = [_parse_line(line, source, line_no) for line_no, line in _lines(text)]
    texts = tuple(transcription for _, transcription in parsed)
    return Annotation(
        quads=np.asarray([coords for coords, _ in parsed], dtype=np.float32).reshape(-1, 4, 2),
        dont_care=np.array([annotation_loaders.is_dont_care(t) for t in texts], dtype=bool),
        texts=texts,
    )


def parse_detection_text(text: str, source: str = "<text>") -> np.ndarray:
    """Parse a result file: ``x1,y1,...,x4,y4`` a line, anything after the 8th number (a score) ignored.

    Returns:
        float32 (N, 4, 2) pixel xy in file order; (0, 4, 2) for an empty file.

    Raises:
        IcdarFormatError: a line without 8 leading numbers, naming file and line.
    """
    if text.startswith(_BOM):
        text = text[1:]
    quads = [_parse_line(line, source, line_no)[0] for line_no, line in _lines(text)]
    return np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2)


def read_annotation_file(path: str | os.PathLike) -> Annotation:
    """Read one ICDAR 2015 ground-truth file (see ``parse_annotation_text``)."""
    return parse_annotation_text(decode_text(Path(path).read_bytes()), source=str(path))


def read_detection_file(path: str | os.PathLike) -> np.ndarray:
    """Read one result file (see ``parse_detection_text``); float32 (N, 4, 2)."""
    return parse_detection_text(decode_text(Path(path).read_bytes()), source=str(path))


# --------------------------------------------------------------------------- writing


# One write-aside-then-rename for the project; kept under this name for icdar.write_bytes_atomic callers.
write_bytes_atomic = atomic_io.write_bytes_atomic


def format_lines(quads: np.ndarray, texts: Sequence[str] | None = None, *, newline: str = "\r\n") -> str:
    """ICDAR 2015 lines for quads, coordinates rounded to integers.

    Args:
        quads: (N, 4, 2) pixel xy; written in the given point order.
        texts: N transcriptions appended after the coordinates, or None for detections.
        newline: line terminator; ICDAR's own files use CRLF.

    Returns:
        One line per quad, each ending in ``newline``; "" for N = 0.
    """
    quads = np.asarray(quads, dtype=np.float64)
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise ValueError(f"quads must be (N, 4, 2), got {quads.shape}")
    if texts is not None and len(texts) != len(quads):
        raise ValueError(f"texts must have one entry per quad ({len(quads)}), got {len(texts)}")
    coords = np.rint(quads.reshape(-1, NUM_COORDS)).astype(np.int64)
    lines = []
    for index, row in enumerate(coords):
        line = ",".join(str(value) for value in row)
        if texts is not None:
            line += "," + texts[index]
        lines.append(line + newline)
    return "".join(lines)


def write_icdar_file(path: str | os.PathLike, quads: np.ndarray, texts: Sequence[str] | None = None,
                     *, newline: str = "\r\n") -> None:
    """Write quads (and transcriptions, for ground truth) as an ICDAR 2015 file, atomically, UTF-8 without BOM."""
    write_bytes_atomic(path, format_lines(quads, texts, newline=newline).encode("utf-8"))


# --------------------------------------------------------------------------- evaluation


def _as_quads(quads: np.ndarray, name: str) -> np.ndarray:
    quads = np.asarray(quads, dtype=np.float64)
    if quads.size == 0:
        return quads.reshape(0, 4, 2)
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise ValueError(f"{name} must be (N, 4, 2), got {quads.shape}")
    return quads


def _polygons(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shapely polygons, their areas and a validity mask for (N, 4, 2) quads."""
    polygons = shapely.polygons(quads) if len(quads) else np.empty(0, dtype=object)
    valid = shapely.is_valid(polygons) if len(quads) else np.zeros(0, dtype=bool)
    return polygons, shapely.area(polygons), np.asarray(valid, dtype=bool)


def _intersection_areas(first: np.ndarray, first_quads: np.ndarray, first_valid: np.ndarray,
                        second: np.ndarray, second_quads: np.ndarray, second_valid: np.ndarray) -> np.ndarray:
    """(len(first), len(second)) intersection areas; 0 where a polygon is invalid or the boxes are apart."""
    areas = np.zeros((len(first), len(second)))
    if not len(first) or not len(second):
        return areas
    low_a, high_a = first_quads.min(axis=1), first_quads.max(axis=1)
    low_b, high_b = second_quads.min(axis=1), second_quads.max(axis=1)
    overlapping = np.all((low_a[:, None] <= high_b[None]) & (low_b[None] <= high_a[:, None]), axis=-1)
    overlapping &= first_valid[:, None] & second_valid[None]
    rows, cols = np.nonzero(overlapping)
    if len(rows):
        areas[rows, cols] = shapely.area(shapely.intersection(first[rows], second[cols]))
    return areas


def _ignored_detections(gt, dont_care_index, det, det_areas, dont_care_area_threshold) -> np.ndarray:
    """bool (D,): detections mostly inside a don't-care region (official order: dont_care & det).

    gt, det: (polygons, quads, valid) as ``_polygons`` and the quads give them."""
    det_ignored = np.zeros(len(det[1]), dtype=bool)
    if len(dont_care_index) and len(det[1]):
        inside = _intersection_areas(*(part[dont_care_index] for part in gt), *det)
        with np.errstate(divide="ignore", invalid="ignore"):
            covered = np.where(det_areas[None] == 0, 0.0, inside / det_areas[None])
        det_ignored = np.any(covered > dont_care_area_threshold, axis=0)
    return det_ignored


def _match_pairs(det, det_areas, gt, gt_areas, allowed: np.ndarray, iou_threshold: float) -> list[tuple[int, int]]:
    """(gt index, det index) pairs, one to one in the protocol's order: ground truth in file order,
    each taking the first free detection with IoU > iou_threshold where ``allowed`` (G, D).

    IoU with the official operand order: intersection(det, gt), union = det + gt - intersection."""
    pairs: list[tuple[int, int]] = []
    if not (len(gt[1]) and len(det[1])):
        return pairs
    intersections = _intersection_areas(*det, *gt).T
    unions = det_areas[None] + gt_areas[:, None] - intersections
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(unions == 0, 0.0, intersections / unions)
    candidates = (iou > iou_threshold) & allowed
    det_free = np.ones(len(det[1]), dtype=bool)
    for gt_index in np.flatnonzero(candidates.any(axis=1)):
        free = candidates[gt_index] & det_free
        if free.any():
            det_index = int(np.argmax(free))
            det_free[det_index] = False
            pairs.append((int(gt_index), det_index))
    return pairs


def _image_figures(matched: int, gt_care: int, det_care: int) -> tuple[float, float, float]:
    """(precision, recall, hmean) of one image, with the official conventions for empty sides."""
    if gt_care == 0:
        recall = 1.0
        precision = 0.0 if det_care > 0 else 1.0
    else:
        recall = float(matched) / gt_care
        precision = 0.0 if det_care == 0 else float(matched) / det_care
    hmean = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return precision, recall, hmean


def evaluate_image(gt_quads: np.ndarray, gt_dont_care: np.ndarray, det_quads: np.ndarray, *,
                   iou_threshold: float = IOU_THRESHOLD,
                   dont_care_area_threshold: float = DONT_CARE_AREA_THRESHOLD) -> ImageEvaluation:
    """Task 4.1 evaluation of one image's detections.

    Args:
        gt_quads: (G, 4, 2) pixel xy ground truth in file order, either orientation.
        gt_dont_care: (G,) bool, True for ``###`` regions.
        det_quads: (D, 4, 2) pixel xy detections in file order, either orientation.
        iou_threshold: a pair matches when IoU > this.
        dont_care_area_threshold: a detection is ignored when its intersection with a
            don't-care region is > this fraction of its own area.

    Returns:
        ImageEvaluation; empty inputs follow the official conventions (see module docstring).
    """
    gt_quads = _as_quads(gt_quads, "gt_quads")
    det_quads = _as_quads(det_quads, "det_quads")
    gt_dont_care = np.asarray(gt_dont_care, dtype=bool).reshape(-1)
    if len(gt_dont_care) != len(gt_quads):
        raise ValueError(f"gt_dont_care must have one entry per ground-truth quad ({len(gt_quads)}), "
                         f"got {len(gt_dont_care)}")
    gt_polygons, gt_areas, gt_valid = _polygons(gt_quads)
    det_polygons, det_areas, det_valid = _polygons(det_quads)

    dont_care_index = np.flatnonzero(gt_dont_care)
    det_ignored = _ignored_detections((gt_polygons, gt_quads, gt_valid), dont_care_index,
                                      (det_polygons, det_quads, det_valid), det_areas, dont_care_area_threshold)
    pairs = _match_pairs((det_polygons, det_quads, det_valid), det_areas, (gt_polygons, gt_quads, gt_valid),
                         gt_areas, ~gt_dont_care[:, None] & ~det_ignored[None], iou_threshold)
    matched = len(pairs)
    gt_care = int(len(gt_quads) - gt_dont_care.sum())
    det_care = int(len(det_quads) - det_ignored.sum())
    precision, recall, hmean = _image_figures(matched, gt_care, det_care)
    return ImageEvaluation(
        precision=precision, recall=recall, hmean=hmean, matched=matched, gt_care=gt_care, det_care=det_care,
        pairs=tuple(pairs),
        gt_dont_care=tuple(int(i) for i in dont_care_index),
        det_dont_care=tuple(int(i) for i in np.flatnonzero(det_ignored)),
        invalid_gt=tuple(int(i) for i in np.flatnonzero(~gt_valid)),
        invalid_det=tuple(int(i) for i in np.flatnonzero(~det_valid)),
    )


def evaluate(ground_truth: Mapping[str, Annotation], detections: Mapping[str, np.ndarray], *,
             iou_threshold: float = IOU_THRESHOLD,
             dont_care_area_threshold: float = DONT_CARE_AREA_THRESHOLD) -> Evaluation:
    """Task 4.1 evaluation over a data set.

    Args:
        ground_truth: image stem -> Annotation; every image evaluated is a key here.
        detections: image stem -> (D, 4, 2) detections; a missing key means no detections.
            Keys without ground truth are ignored (with a warning).
        iou_threshold, dont_care_area_threshold: see ``evaluate_image``.

    Returns:
        Evaluation with overall figures from the summed counts and per-image results.
    """
    extra = sorted(set(detections) - set(ground_truth))
    if extra:
        log.warning("%d result(s) have no ground truth and are ignored: %s", len(extra), ", ".join(extra[:5]))
    per_image: dict[str, ImageEvaluation] = {}
    for stem, annotation in ground_truth.items():
        det_quads = detections.get(stem, np.zeros((0, 4, 2), dtype=np.float32))
        result = evaluate_image(annotation.quads, annotation.dont_care, det_quads, iou_threshold=iou_threshold,
                                dont_care_area_threshold=dont_care_area_threshold)
        if result.invalid_gt or result.invalid_det:
            log.warning("%s: %d ground-truth and %d detected polygon(s) are self-intersecting or degenerate; "
                        "they overlap nothing", stem, len(result.invalid_gt), len(result.invalid_det))
        per_image[stem] = result
    matched = sum(r.matched for r in per_image.values())
    gt_care = sum(r.gt_care for r in per_image.values())
    det_care = sum(r.det_care for r in per_image.values())
    recall = 0.0 if gt_care == 0 else float(matched) / gt_care
    precision = 0.0 if det_care == 0 else float(matched) / det_care
    hmean = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return Evaluation(precision=precision, recall=recall, hmean=hmean, matched=matched, gt_care=gt_care,
                      det_care=det_care, per_image=per_image)


# --------------------------------------------------------------------------- folders and zips


def _text_entries(path: Path) -> dict[str, tuple[str, bytes | Path]]:
    """Base name -> (display name, bytes or file path) for the .txt files of a folder or zip."""
    entries: dict[str, tuple[str, bytes | Path]] = {}
    if path.is_dir():
        for file_path in sorted(path.iterdir()):
            if file_path.is_file() and file_path.suffix.lower() == TEXT_SUFFIX:
                entries[file_path.name] = (str(file_path), file_path)
        return entries
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such folder or zip file")
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = Path(info.filename).name
                if info.is_dir() or Path(name).suffix.lower() != TEXT_SUFFIX:
                    continue
                if name in entries:
                    raise ValueError(f"{path}: two entries named {name} in different folders")
                entries[name] = (f"{path}:{info.filename}", archive.read(info))
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a folder and not a readable zip file ({error})") from None
    return entries


def _entry_text(entry: tuple[str, bytes | Path]) -> str:
    content = entry[1]
    return decode_text(content.read_bytes() if isinstance(content, Path) else content)


def _strip_prefix(name: str, prefix: str) -> str:
    stem = name[:-len(TEXT_SUFFIX)]
    return stem[len(prefix):] if stem.startswith(prefix) else stem


def load_icdar_ground_truth(gt_path: str | os.PathLike) -> dict[str, Annotation]:
    """ICDAR 2015 ground truth from a folder or zip of ``gt_<stem>.txt`` files.

    Returns:
        image stem (``gt_`` prefix removed) -> Annotation, in file-name order.
        Other files in an image folder (``.jpg``) are ignored.
    """
    entries = _text_entries(Path(gt_path))
    ground_truth = {}
    for name, entry in entries.items():
        ground_truth[_strip_prefix(name, GT_PREFIX)] = parse_annotation_text(_entry_text(entry), source=entry[0])
    if not ground_truth:
        raise ValueError(f"{gt_path}: no ground-truth .txt files found")
    return ground_truth


def load_ground_truth(gt_path: str | os.PathLike, annotation_format: str = "auto") -> dict[str, Annotation]:
    """Ground truth in any supported annotation format, keyed by image stem.

    ICDAR 2015 (a zip, or a folder holding ``gt_*.txt`` files, or
    ``annotation_format="icdar2015"``) is read here, exactly as the official
    script reads it. Other formats go through ``data_preprocessor.load_dataset``.

    Args:
        gt_path: folder or zip file.
        annotation_format: "auto", "icdar2015" or any name data_preprocessor knows.

    Returns:
        image stem -> Annotation.
    """
    path = Path(gt_path)
    is_icdar = annotation_format == ICDAR_FORMAT or path.is_file() or (
        annotation_format == "auto" and path.is_dir()
        and any(p.name.startswith(GT_PREFIX) and p.suffix.lower() == TEXT_SUFFIX for p in path.iterdir()))
    if is_icdar:
        if path.is_file() and annotation_format not in ("auto", ICDAR_FORMAT):
            raise ValueError(f"{path}: a zip file must hold ICDAR 2015 ground truth, "
                             f"not --annotation_format {annotation_format}")
        return load_icdar_ground_truth(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder or zip file")
    try:
        import data_preprocessor  # noqa: PLC0415  (optional dependency, only for non-ICDAR formats)
    except ImportError as error:
        raise ValueError(f"{path}: reading annotation format {annotation_format!r} needs data_preprocessor.py "
                         f"({error})") from None
    report = data_preprocessor.load_dataset(str(path), annotation_format)
    for problem in report.problems:
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        log.warning("%s: %s", where, problem.reason)
    ground_truth = {
        Path(sample.image_path).stem: Annotation(
            quads=np.asarray(sample.quads, dtype=np.float32).reshape(-1, 4, 2),
            dont_care=np.asarray(sample.dont_care, dtype=bool).reshape(-1),
            texts=tuple(sample.texts))
        for sample in report.samples
    }
    ground_truth.update(_unreadable_image_annotations(report))
    return ground_truth


def _unreadable_image_annotations(report) -> dict[str, Annotation]:
    """Ground truth of the images ``load_dataset`` skipped as unreadable, keyed by image stem.

    A scorer must count their regions as missed rather than drop the image, so their annotation
    files are read as written (no clipping: the image size is unknown). YOLO boxes are relative
    to the image size and cannot be read; those images are named in a warning.
    """
    import annotation_loaders  # noqa: PLC0415  (only for non-ICDAR formats, like data_preprocessor)

    loader = annotation_loaders.ANNOTATION_FORMATS[report.format]
    found = {}
    for problem in report.problems:
        # data_preprocessor's reasons for an image it cannot decode (its _inspect_image).
        if problem.line is not None or not problem.reason.startswith(("unreadable image", "truncated image")):
            continue
        image_path = Path(problem.file)
        annotation_path = loader.find_annotation(image_path)
        if annotation_path is None and report.format != "ccpd":
            continue
        if report.format == "yolo":
            log.warning("%s: unreadable image; its YOLO boxes need the image size and are not scored", image_path)
            continue
        boxes, _ = loader.parse(annotation_path, image_path, None, None)
        found[image_path.stem] = Annotation(
            quads=np.asarray([box.quad for box in boxes], dtype=np.float32).reshape(-1, 4, 2),
            dont_care=np.asarray([box.dont_care for box in boxes], dtype=bool).reshape(-1),
            texts=tuple(box.text for box in boxes))
    return found


MISSING_SHOWN = 5  # missing result files named in the warning


def load_detections(pred_path: str | os.PathLike, stems: Sequence[str]) -> dict[str, np.ndarray]:
    """Result files for the given image stems from a folder or zip.

    A stem's file is ``res_<stem>.txt`` or ``<stem>.txt`` (or ``gt_<stem>.txt``, so
    that ground truth can be scored against itself); a stem with none is left out
    (no detections, with a warning naming the first few and the count). Having two is an
    error, since they may disagree.

    Returns:
        image stem -> float32 (D, 4, 2).
    """
    entries = _text_entries(Path(pred_path))
    detections = {}
    used = set()
    for stem in stems:
        names = [prefix + stem + TEXT_SUFFIX for prefix in (RESULT_PREFIX, "", GT_PREFIX)
                 if prefix + stem + TEXT_SUFFIX in entries]
        if len(names) > 1:
            raise ValueError(f"{pred_path}: both {names[0]} and {names[1]} exist; keep one naming per folder")
        if names:
            entry = entries[names[0]]
            detections[stem] = parse_detection_text(_entry_text(entry), source=entry[0])
            used.add(names[0])
    unused = sorted(set(entries) - used)
    if unused:
        log.warning("%s: %d .txt file(s) match no ground-truth image and are ignored (e.g. %s)",
                    pred_path, len(unused), unused[0])
    missing = [stem for stem in stems if stem not in detections]
    if missing:
        shown = ", ".join(f"{RESULT_PREFIX}{stem}{TEXT_SUFFIX}" for stem in missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        log.warning("%s: no result file for %d of %d images (%s%s); scored as images without detections, "
                    "as the official scorer does", pred_path, len(missing), len(stems), shown, more)
    return detections


def evaluate_paths(gt_path: str | os.PathLike, pred_path: str | os.PathLike,
                   annotation_format: str = "auto") -> Evaluation:
    """Load ground truth and result files (folders or zips) and evaluate them (see ``evaluate``)."""
    ground_truth = load_ground_truth(gt_path, annotation_format)
    return evaluate(ground_truth, load_detections(pred_path, list(ground_truth)))


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python icdar.py evaluate --gt_path DIR|ZIP --pred_path DIR|ZIP [--annotation_format F] [--json]``."""
    parser = argparse.ArgumentParser(prog="icdar.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate_parser = commands.add_parser(
        "evaluate", help="score result files with the official ICDAR 2015 Task 4.1 protocol")
    evaluate_parser.add_argument("--gt_path", required=True, help="ground truth: folder or zip")
    evaluate_parser.add_argument("--pred_path", required=True,
                                 help="result files (<stem>.txt or res_<stem>.txt): folder or zip")
    evaluate_parser.add_argument("--annotation_format", default="auto",
                                 help="ground-truth format: auto, icdar2015, or another data_preprocessor format")
    evaluate_parser.add_argument("--per_image", action="store_true", help="print one line per image")
    evaluate_parser.add_argument("--json", action="store_true", help="print the figures as one JSON line last")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        evaluation = evaluate_paths(args.gt_path, args.pred_path, args.annotation_format)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.per_image:
        for stem, result in evaluation.per_image.items():
            print(f"{stem}: precision {result.precision:.3f} recall {result.recall:.3f} hmean {result.hmean:.3f} "
                  f"matched {result.matched} gt {result.gt_care} det {result.det_care}"
                  + ("" if result.all_correct else "  (not all correct)"))
    print(evaluation.summary_line())
    if args.json:
        print(json.dumps(evaluation.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
