"""What every data module shares: a training Sample, the DataError users see, the DatasetReport, image checks.

numpy/OpenCV only; no flags, no printing. The layers above (annotation loading in
data_preprocessor.py, augmentation.py, batch_stream.py) import from here, never the other way.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from annotation_loaders import Problem

__all__ = ["DataError", "DatasetReport", "Sample", "inspect_image"]


class DataError(ValueError):
    """Bad training data or arguments, with a message meant for the user."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One training image and its boxes.

    quads: float32 (N, 4, 2), pixel xy in the original image, clockwise from the top-left.
    dont_care: bool (N,), True for don't-care boxes (annotation_loaders.is_dont_care; masked out of the loss).
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


def _jpeg_is_complete(data: np.ndarray) -> bool:
    """Whether a JPEG's last scan is followed by an end-of-image marker (no truncation)."""
    raw = data.tobytes()
    return raw.rfind(b"\xff\xd9") > raw.rfind(b"\xff\xda")


def inspect_image(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """(height, width) of a decodable image, or (None, the reason it is unusable).

    Empty, unreadable, truncated JPEG (no end marker after the last scan) and undecodable files
    are unusable; the reason is a short phrase for a Problem or DataError message.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        return None, f"unreadable image ({error.strerror})"
    if data.size == 0:
        return None, "unreadable image (empty file)"
    if path.suffix.lower() in (".jpg", ".jpeg") and data[:2].tobytes() == b"\xff\xd8" and not _jpeg_is_complete(data):
        return None, "truncated image (JPEG data ends before its end marker)"
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    except cv2.error as error:  # OpenCV raises for a header announcing more pixels than it decodes
        return None, f"unreadable image ({str(error).strip().splitlines()[-1][:120]})"
    if image is None:
        return None, f"unreadable image (not a valid {path.suffix.lstrip('.').lower()} file)"
    return image.shape[:2], None
