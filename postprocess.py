"""Inference helpers shared by eval.py, export and serving: resize, normalize, decode, rescale.

No TensorFlow here: these take and return numpy arrays, so the model call and
the timing of each stage stay with the caller.
"""
from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from geometry import OUTPUT_STRIDE, decode_rbox, order_clockwise_from_top_left
from locality_aware_nms import nms_locality

log = logging.getLogger(__name__)

RESIZE_MULTIPLE = 32  # the network halves the resolution 5 times


def resize_for_inference(image_rgb, max_side_len: int = 2400) -> tuple[np.ndarray, tuple[float, float]]:
    """Resizes an image so both sides are multiples of 32 (EAST-tf2 ``resize_image``).

    The longer side is first capped at ``max_side_len``, then each side is
    rounded down to a multiple of RESIZE_MULTIPLE, but never below it.

    Args:
      image_rgb: uint8 (H, W, 3).
      max_side_len: cap on the longer side, in px.

    Returns:
      (resized uint8 (h, w, 3), (ratio_h, ratio_w)) with ratio = new / original size.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image_rgb must be (H, W, 3), got shape {image.shape}")
    if max_side_len < RESIZE_MULTIPLE:
        raise ValueError(f"max_side_len must be at least {RESIZE_MULTIPLE}, got {max_side_len}")
    height, width = image.shape[:2]
    ratio = min(1.0, float(max_side_len) / max(height, width))
    resize_h = max(RESIZE_MULTIPLE, int(height * ratio) // RESIZE_MULTIPLE * RESIZE_MULTIPLE)
    resize_w = max(RESIZE_MULTIPLE, int(width * ratio) // RESIZE_MULTIPLE * RESIZE_MULTIPLE)
    if (resize_h, resize_w) != (height, width):
        image = cv2.resize(image, (resize_w, resize_h))
    return image, (resize_h / float(height), resize_w / float(width))


def normalize_image(image) -> np.ndarray:
    """Scales uint8 pixels to the network's float32 range [-1, 1] as pixel / 127.5 - 1."""
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def _mean_scores(score_map: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean score-map value inside each box (EAST-tf2's box filter), 0 for empty boxes.

    Like EAST-tf2, corners are truncated to int and divided by the stride; each
    box is filled only over its bounding window, not the whole map.
    """
    corners = boxes[:, :8].reshape(-1, 4, 2).astype(np.int32) // OUTPUT_STRIDE
    map_h, map_w = score_map.shape
    means = np.zeros(len(boxes), np.float32)
    for index, quad in enumerate(corners):
        low = np.maximum(quad.min(axis=0), 0)
        high = np.minimum(quad.max(axis=0), (map_w - 1, map_h - 1))
        if np.any(high < low):
            continue
        window = score_map[low[1] : high[1] + 1, low[0] : high[0] + 1]
        mask = np.zeros(window.shape, np.uint8)
        cv2.fillPoly(mask, [quad - low], 1)
        inside = mask.astype(bool)
        if inside.any():
            means[index] = window[inside].mean()
    return means


def detect_boxes(
    score_map,
    geo_map,
    *,
    score_map_thresh: float = 0.8,
    box_thresh: float = 0.1,
    nms_thres: float = 0.2,
    timings: dict | None = None,
) -> np.ndarray:
    """Text boxes from one image's network outputs (EAST-tf2 ``detect``).

    Steps: ``decode_rbox`` (pixels with score > score_map_thresh), locality-aware
    NMS (IoU nms_thres), then each box's score becomes the mean score-map value
    inside it and boxes whose mean is <= box_thresh are dropped.

    Args:
      score_map: (h, w) or (h, w, 1) scores.
      geo_map: (h, w, 5) RBOX geometry (see geometry.py).
      timings: optional dict that receives the seconds spent in "decode" and in "nms"
        (the mean-score filter counts as NMS).

    Returns:
      float32 (N, 9): corners in network-input px and the mean score. Empty -> (0, 9).
    """
    score_map = np.asarray(score_map, dtype=np.float32)
    if score_map.ndim == 3 and score_map.shape[-1] == 1:
        score_map = score_map[..., 0]
    start = time.perf_counter()
    boxes = decode_rbox(score_map, geo_map, score_map_thresh)
    decoded = time.perf_counter()
    boxes = nms_locality(boxes, nms_thres)
    if len(boxes) == 0:
        boxes = np.zeros((0, 9), np.float32)
    else:
        boxes = boxes.copy()
        boxes[:, 8] = _mean_scores(score_map, boxes)
        boxes = boxes[boxes[:, 8] > box_thresh]
    if timings is not None:
        timings["decode"] = decoded - start
        timings["nms"] = time.perf_counter() - decoded
    return boxes


def boxes_to_original(boxes, ratio_h: float, ratio_w: float) -> np.ndarray:
    """Maps boxes from network-input px back to the original image.

    Args:
      boxes: (N, 9) from detect_boxes (the score column is ignored).
      ratio_h, ratio_w: the ratios returned by resize_for_inference.

    Returns:
      float32 (N, 4, 2) quads in original px, clockwise from top-left. Empty -> (0, 4, 2).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4, 2), np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 9:
        raise ValueError(f"boxes must be (N, 9), got shape {boxes.shape}")
    if ratio_h <= 0 or ratio_w <= 0:
        raise ValueError(f"ratio_h and ratio_w must be positive, got {(ratio_h, ratio_w)}")
    quads = boxes[:, :8].reshape(-1, 4, 2) / np.array([ratio_w, ratio_h])
    return order_clockwise_from_top_left(quads)
