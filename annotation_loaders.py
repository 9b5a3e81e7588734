"""Annotation formats: one small parser per format, a registry, and per-folder auto-detection.

A parser turns one annotation file into raw boxes plus the problems it met on the way; it does not
judge geometry (order, clipping, degenerate quads) - ``data_preprocessor.load_dataset`` does that once
for every format. Formats:

- ``icdar2015``: ``gt_<image stem>.txt`` beside the image, UTF-8 with or without BOM,
  ``x1,y1,x2,y2,x3,y3,x4,y4,text`` (the text may contain commas and is unquoted as the official
  scripts do). Every format marks don't care the same way: the text is exactly ``###`` (see
  ``is_dont_care``; EAST-tf2's extra ``*`` is an ordinary text).
- ``plate``: ``<image stem>.txt`` beside the image, ``x1 y1 x2 y2 x3 y3 x4 y4 [text]``.
- ``voc``: Pascal VOC ``<image stem>.xml`` beside the image or in ``../Annotations/``; each
  ``<bndbox>`` becomes a rectangle, ``<difficult>1</difficult>`` marks don't care.
- ``yolo``: ``<image stem>.txt`` beside the image or in ``../labels/``; ``class cx cy w h``
  normalized to [0, 1] (or the 9-value oriented form ``class x1 y1 ... x4 y4``).
- ``labelme``: ``<image stem>.json`` with ``shapes`` of type ``polygon`` (4 points) or ``rectangle``.
- ``ccpd``: no annotation file; the four plate corners are encoded in the CCPD file name.
"""
from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# The one don't-care rule (training and scoring): see is_dont_care.
DONT_CARE_TEXT = "###"
NUMBERS_PER_QUAD = 8
_QUOTED_TEXT = re.compile(r'^\s*"(.*)"\s*$')
# How many images auto-detection looks at; enough to tell formats apart, cheap on big folders.
DETECT_SAMPLE_SIZE = 50


@dataclass
class Problem:
    """Something wrong with the input data: the file, the 1-based line (None when not line-based), why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"


@dataclass
class RawBox:
    """One annotated box as written in the file: quad float64 (4, 2) pixel xy in file order."""

    quad: np.ndarray
    text: str
    dont_care: bool
    line: int | None


ParseResult = tuple[list[RawBox], list[Problem]]


@dataclass(frozen=True)
class AnnotationFormat:
    """A registered annotation format.

    find_annotation(image_path) -> the annotation file, or None when the image has none.
    parse(annotation_path, image_path, image_hw, yolo_classes) -> (boxes, problems).
    sniff(annotation_path, image_path) -> whether the file looks like this format (auto-detection).
    """

    name: str
    find_annotation: Callable[[Path], Path | None]
    parse: Callable[[Path | None, Path, tuple[int, int], Collection[int] | None], ParseResult]
    sniff: Callable[[Path | None, Path], bool]
    expected_file: str


def images_in_folder(folder: Path) -> list[Path]:
    """Images (jpg, jpeg, png, bmp in any case) directly inside folder, sorted by name."""
    return sorted(
        (path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda path: path.name,
    )


def _existing(*candidates: Path) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def _read_text(path: Path) -> tuple[list[str] | None, Problem | None]:
    """The lines of a UTF-8 text file (BOM dropped, any line ending), or a Problem."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, Problem(str(path), None, f"not UTF-8 text ({error.reason} at byte {error.start})")
    except OSError as error:
        return None, Problem(str(path), None, f"cannot read annotation file ({error.strerror})")
    return text.splitlines(), None


def _rectangle(xmin: float, ymin: float, xmax: float, ymax: float) -> np.ndarray:
    return np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=np.float64)


def _parse_numbers(fields: list[str]) -> tuple[list[float] | None, str | None]:
    """Floats from fields, or the reason the first non-numeric one fails."""
    numbers = []
    for index, field in enumerate(fields):
        try:
            numbers.append(float(field))
        except ValueError:
            return None, f"non-numeric value {field.strip()!r} at position {index + 1}"
    return numbers, None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def unquote_transcription(transcription: str) -> str:
    """The official ICDAR scripts' quoting: ``"text"`` (spaces around allowed) becomes ``text``, with
    ``\\\\`` -> ``\\`` and ``\\"`` -> ``"`` inside; anything else is returned unchanged."""
    quoted = _QUOTED_TEXT.match(transcription)
    if quoted is None:
        return transcription
    return quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')


def is_dont_care(transcription: str) -> bool:
    """The project's one don't-care rule, for training and for scoring: the (unquoted)
    transcription is exactly ``###``.

    This is what the official ICDAR 2015 Task 4.1 script does (``transcription == "###"`` after
    removing surrounding quotes), so scores match it. EAST-tf2 (after argman/EAST) also treated
    ``*`` as don't care when training; ICDAR 2015 marks don't care with ``###`` (the scorer ignores
    ``*``), and one rule keeps training and scoring consistent, so ``*`` is an ordinary
    transcription here: write ``###`` (or set
    ``<difficult>1</difficult>`` in VOC) for regions the loss must ignore.
    """
    return transcription == DONT_CARE_TEXT


def parse_quad_line(line: str, separator: str | None = ",") -> tuple[np.ndarray | None, str]:
    """One ``x1,y1,x2,y2,x3,y3,x4,y4[,transcription]`` line (ICDAR 2015 ground truth and results,
    and, with ``separator=None`` (whitespace), the plate format).

    The transcription is everything after the eighth separator (so it may hold commas), unquoted
    with ``unquote_transcription``; test it with ``is_dont_care``. Coordinates may be decimals
    (and non-finite: callers judge geometry).

    Returns:
        (quad float64 (4, 2) pixel xy in file order, transcription), or (None, the reason the
        line is malformed: "wrong coordinate count: ..." or "malformed line (non-numeric ...)").
    """
    fields = line.split(separator)
    numeric = 0
    while numeric < len(fields) and _is_number(fields[numeric]):
        numeric += 1
    if numeric < NUMBERS_PER_QUAD:
        if any(_is_number(field) for field in fields[numeric + 1:]):
            return None, (f"malformed line (non-numeric value {fields[numeric].strip()!r} at position "
                          f"{numeric + 1}): {line!r}")
        return None, f"wrong coordinate count: expected 8 numbers, got {numeric} in {line!r}"
    quad = np.asarray([float(field) for field in fields[:NUMBERS_PER_QUAD]], dtype=np.float64).reshape(4, 2)
    if separator is None:
        transcription = " ".join(fields[NUMBERS_PER_QUAD:])
    else:
        parts = line.split(separator, NUMBERS_PER_QUAD)
        transcription = parts[NUMBERS_PER_QUAD] if len(parts) > NUMBERS_PER_QUAD else ""
    return quad, unquote_transcription(transcription)


def _quad_line(line: str, separator: str | None, line_no: int, path: Path) -> tuple[RawBox | None, Problem | None]:
    """A RawBox from one annotation line, or a Problem quoting the line."""
    fields = line.split(separator)
    if len(fields) > NUMBERS_PER_QUAD and len(fields) % 2 == 0 and all(map(_is_number, fields)):
        # Only numbers, an even count above 8: a polygon with more than 4 points (no text box to train on).
        return None, Problem(str(path), line_no,
                             f"wrong coordinate count: expected 8 numbers, got {len(fields)} in {line!r}")
    quad, text = parse_quad_line(line, separator)
    if quad is None:
        return None, Problem(str(path), line_no, text)
    return RawBox(quad, text, is_dont_care(text), line_no), None


def _parse_quad_lines(annotation_path: Path, separator: str | None) -> ParseResult:
    lines, problem = _read_text(annotation_path)
    if problem is not None:
        return [], [problem]
    boxes, problems = [], []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        box, problem = _quad_line(line, separator, line_no, annotation_path)
        boxes += [box] if box is not None else []
        problems += [problem] if problem is not None else []
    return boxes, problems


def _looks_like_quad(fields: list[str]) -> bool:
    return len(fields) >= NUMBERS_PER_QUAD and all(map(_is_number, fields[:NUMBERS_PER_QUAD]))


def _mostly(rows: list[list[str]], looks_right: Callable[[list[str]], bool]) -> bool:
    """Whether most of the first lines of a file look right (a malformed line must not hide the format)."""
    rows = rows[:10]
    return bool(rows) and 2 * sum(map(looks_right, rows)) >= len(rows)


# --- icdar2015 -------------------------------------------------------------------------------

def _icdar_find(image_path: Path) -> Path | None:
    return _existing(image_path.with_name(f"gt_{image_path.stem}.txt"))


def _icdar_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    return _parse_quad_lines(annotation_path, ",")


def _icdar_sniff(annotation_path, image_path) -> bool:
    lines, problem = _read_text(annotation_path)
    if problem is not None:
        return False
    return _mostly([line.split(",") for line in lines if line.strip()], _looks_like_quad)


# --- plate -----------------------------------------------------------------------------------

def _same_stem_txt(image_path: Path) -> Path | None:
    return _existing(image_path.with_suffix(".txt"))


def _plate_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    return _parse_quad_lines(annotation_path, None)


def _plate_sniff(annotation_path, image_path) -> bool:
    lines, problem = _read_text(annotation_path)
    if problem is not None:
        return False
    return _mostly([line.split() for line in lines if line.strip()], _looks_like_quad)


# --- yolo ------------------------------------------------------------------------------------

def _beside_or_in_sibling(image_path: Path, suffix: str, images_folder: str, annotations_folder: str) -> Path | None:
    """``<stem><suffix>`` beside the image, else (for an image in ``images_folder/``) in the sibling
    ``annotations_folder/`` (YOLO's images/labels, VOC's JPEGImages/Annotations layouts)."""
    candidates = [image_path.with_suffix(suffix)]
    if image_path.parent.name == images_folder:
        candidates.append(image_path.parent.parent / annotations_folder / f"{image_path.stem}{suffix}")
    return _existing(*candidates)


def _yolo_find(image_path: Path) -> Path | None:
    return _beside_or_in_sibling(image_path, ".txt", "images", "labels")


def _yolo_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    lines, problem = _read_text(annotation_path)
    if problem is not None:
        return [], [problem]
    height, width = image_hw
    boxes, problems = [], []
    for line_no, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (5, 9):
            problems.append(Problem(str(annotation_path), line_no,
                                    f"wrong coordinate count: expected 'class cx cy w h' (5 values) or "
                                    f"'class x1 y1 ... x4 y4' (9 values), got {len(fields)} in {line!r}"))
            continue
        numbers, reason = _parse_numbers(fields)
        if numbers is None or not float(numbers[0]).is_integer():
            reason = reason or f"class id {fields[0]!r} is not an integer"
            problems.append(Problem(str(annotation_path), line_no, f"malformed line ({reason}): {line!r}"))
            continue
        class_id = int(numbers[0])
        if yolo_classes is not None and class_id not in yolo_classes:
            continue
        if len(numbers) == 5:
            cx, cy, box_w, box_h = numbers[1:]
            quad = _rectangle(cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
        else:
            quad = np.asarray(numbers[1:], dtype=np.float64).reshape(4, 2)
        quad = quad * np.array([width, height], dtype=np.float64)
        boxes.append(RawBox(quad, str(class_id), False, line_no))
    return boxes, problems


def _yolo_sniff(annotation_path, image_path) -> bool:
    lines, problem = _read_text(annotation_path)
    if problem is not None:
        return False
    return _mostly([line.split() for line in lines if line.strip()], _looks_like_yolo)


def _looks_like_yolo(fields: list[str]) -> bool:
    return (len(fields) in (5, 9) and all(map(_is_number, fields)) and float(fields[0]).is_integer()
            and all(-0.5 <= float(value) <= 1.5 for value in fields[1:]))


# --- voc -------------------------------------------------------------------------------------

def _voc_find(image_path: Path) -> Path | None:
    return _beside_or_in_sibling(image_path, ".xml", "JPEGImages", "Annotations")


def _voc_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    try:
        root = ElementTree.parse(annotation_path).getroot()
    except ElementTree.ParseError as error:
        return [], [Problem(str(annotation_path), error.position[0], f"malformed XML ({error})")]
    except OSError as error:
        return [], [Problem(str(annotation_path), None, f"cannot read annotation file ({error.strerror})")]
    boxes, problems = [], []
    for index, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        bndbox = obj.find("bndbox")
        if bndbox is None:
            problems.append(Problem(str(annotation_path), None, f"object {index} ({name!r}) has no <bndbox>"))
            continue
        values = {key: (bndbox.findtext(key) or "").strip() for key in ("xmin", "ymin", "xmax", "ymax")}
        missing = [key for key, value in values.items() if not value]
        if missing:
            problems.append(Problem(str(annotation_path), None,
                                    f"object {index} ({name!r}): <bndbox> lacks {', '.join(missing)}"))
            continue
        numbers, reason = _parse_numbers(list(values.values()))
        if numbers is None:
            problems.append(Problem(str(annotation_path), None, f"object {index} ({name!r}): {reason} in <bndbox>"))
            continue
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        boxes.append(RawBox(_rectangle(*numbers), name, difficult or is_dont_care(name), None))
    return boxes, problems


def _voc_sniff(annotation_path, image_path) -> bool:
    try:
        return ElementTree.parse(annotation_path).getroot().tag == "annotation"
    except (ElementTree.ParseError, OSError):
        return False


# --- labelme ---------------------------------------------------------------------------------

def _labelme_find(image_path: Path) -> Path | None:
    return _existing(image_path.with_suffix(".json"))


def _labelme_load(annotation_path: Path) -> tuple[dict | None, Problem | None]:
    try:
        document = json.loads(annotation_path.read_bytes().decode("utf-8-sig"))
    except json.JSONDecodeError as error:
        return None, Problem(str(annotation_path), error.lineno, f"malformed JSON ({error.msg})")
    except UnicodeDecodeError as error:
        return None, Problem(str(annotation_path), None, f"not UTF-8 text ({error.reason})")
    except OSError as error:
        return None, Problem(str(annotation_path), None, f"cannot read annotation file ({error.strerror})")
    if not isinstance(document, dict) or not isinstance(document.get("shapes"), list):
        return None, Problem(str(annotation_path), None, "not a labelme file (no 'shapes' list)")
    return document, None


def _labelme_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    document, problem = _labelme_load(annotation_path)
    if problem is not None:
        return [], [problem]
    boxes, problems = [], []
    for index, shape in enumerate(document["shapes"], start=1):
        shape = shape if isinstance(shape, dict) else {}
        label = str(shape.get("label", "")).strip()
        shape_type = shape.get("shape_type") or "polygon"
        points = shape.get("points")
        where = f"shape {index} ({label!r})"
        try:
            points = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(Problem(str(annotation_path), None, f"{where}: non-numeric points {points!r}"))
            continue
        if points.ndim != 2 or points.shape[1] != 2:
            problems.append(Problem(str(annotation_path), None, f"{where}: points must be [[x, y], ...]"))
            continue
        if shape_type == "rectangle" and len(points) == 2:
            (x1, y1), (x2, y2) = points
            quad = _rectangle(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        elif shape_type == "polygon" and len(points) == 4:
            quad = points
        else:
            problems.append(Problem(str(annotation_path), None,
                                    f"wrong coordinate count: {where} is a {shape_type} with {len(points)} "
                                    f"points (expected a 4-point polygon or a 2-point rectangle)"))
            continue
        boxes.append(RawBox(quad, label, is_dont_care(label), None))
    return boxes, problems


def _labelme_sniff(annotation_path, image_path) -> bool:
    return _labelme_load(annotation_path)[1] is None


# --- ccpd ------------------------------------------------------------------------------------

# Character tables from the CCPD README (index -> character of the plate number).
_CCPD_PROVINCES = ("皖", "沪", "津", "渝", "冀", "晋", "蒙", "辽", "吉", "黑", "苏", "浙", "京", "闽", "赣", "鲁", "豫",
                   "鄂", "湘", "粤", "桂", "琼", "川", "贵", "云", "藏", "陕", "甘", "青", "宁", "新", "警", "学", "O")
_CCPD_LETTERS = tuple("ABCDEFGHJKLMNPQRSTUVWXYZO")
_CCPD_SYMBOLS = tuple("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O")
# area-tilt-bbox-vertices-plate-brightness-blurriness; vertices: 4 "x&y" joined by "_".
_CCPD_NAME = re.compile(r"^[^-]*-[^-]*-[^-]*-(?P<vertices>(\d+&\d+_){3}\d+&\d+)-(?P<plate>[\d_]+)-[^-]*-[^-]*$")


def _ccpd_find(image_path: Path) -> Path | None:
    return None


def _ccpd_plate_text(indices: str) -> str:
    try:
        numbers = [int(value) for value in indices.split("_")]
        return "".join([_CCPD_PROVINCES[numbers[0]], _CCPD_LETTERS[numbers[1]]]
                       + [_CCPD_SYMBOLS[value] for value in numbers[2:]])
    except (ValueError, IndexError):
        return indices


def _ccpd_parse(annotation_path, image_path, image_hw, yolo_classes) -> ParseResult:
    match = _CCPD_NAME.match(image_path.stem)
    if match is None:
        return [], [Problem(str(image_path), None,
                            "file name is not a CCPD name (area-tilt-bbox-x&y_x&y_x&y_x&y-plate-brightness-blur)")]
    corners = [point.split("&") for point in match["vertices"].split("_")]
    # CCPD lists the corners from the bottom-right, going clockwise; validation reorders them.
    quad = np.asarray(corners, dtype=np.float64)
    return [RawBox(quad, _ccpd_plate_text(match["plate"]), False, None)], []


def _ccpd_sniff(annotation_path, image_path) -> bool:
    return _CCPD_NAME.match(image_path.stem) is not None


ANNOTATION_FORMATS: dict[str, AnnotationFormat] = {
    fmt.name: fmt
    for fmt in (
        AnnotationFormat("icdar2015", _icdar_find, _icdar_parse, _icdar_sniff, "gt_<stem>.txt"),
        AnnotationFormat("plate", _same_stem_txt, _plate_parse, _plate_sniff, "<stem>.txt"),
        AnnotationFormat("yolo", _yolo_find, _yolo_parse, _yolo_sniff, "<stem>.txt or ../labels/<stem>.txt"),
        AnnotationFormat("voc", _voc_find, _voc_parse, _voc_sniff, "<stem>.xml or ../Annotations/<stem>.xml"),
        AnnotationFormat("labelme", _labelme_find, _labelme_parse, _labelme_sniff, "<stem>.json"),
        AnnotationFormat("ccpd", _ccpd_find, _ccpd_parse, _ccpd_sniff, "a CCPD file name"),
    )
}
AUTO_FORMAT = "auto"


def format_choices() -> tuple[str, ...]:
    """What an ``--annotation_format`` flag accepts: "auto", then every registered format, in order."""
    return (AUTO_FORMAT, *ANNOTATION_FORMATS)


def detect_annotation_format(image_paths: list[Path]) -> tuple[str | None, str]:
    """Guess the annotation format of a folder from (up to DETECT_SAMPLE_SIZE of) its images.

    Each format scores the images whose annotation it finds and recognizes; the best score wins
    (ties go to the earlier format in ANNOTATION_FORMATS).

    Returns:
        (format name or None when no image matches any format, a sentence saying why).
    """
    sample = image_paths[:DETECT_SAMPLE_SIZE]
    scores = {}
    for name, fmt in ANNOTATION_FORMATS.items():
        score = 0
        for image_path in sample:
            annotation_path = fmt.find_annotation(image_path)
            if (annotation_path is not None or name == "ccpd") and fmt.sniff(annotation_path, image_path):
                score += 1
        scores[name] = score
    best = max(scores, key=lambda name: scores[name])
    if scores[best] == 0:
        return None, (f"none of the {len(sample)} images looked at has an annotation in a known format "
                      f"({', '.join(f'{name}: {fmt.expected_file}' for name, fmt in ANNOTATION_FORMATS.items())})")
    return best, f"auto-detected annotation format '{best}': {scores[best]}/{len(sample)} images matched"
