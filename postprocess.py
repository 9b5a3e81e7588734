"""The one inference pipeline, shared by eval.py, serve.py and export calibration.

``Detector(predict, DetectOptions())`` runs, for each image: resize to multiples of 32
(``resize_for_inference``) → the network (``predict``; pixel scaling is inside the model) →
decode (score > score_map_thresh, restore RBOX) → locality-aware NMS → mean-score filter
(``detect_boxes``) → rescale to the original image, round, drop tiny boxes
(``to_output_quads``). With several test scales, each scale's boxes are mapped to original
pixels and the union is merged by standard NMS before the output step.
With one scale and ``zoom_when_empty`` factors, an image that gives no box is run again at each
factor times the side in turn, until a run gives boxes, and that run's boxes are kept (of several, those
a box of the run before or after it overlaps at ``zoom_confirm_iou``, when any is). With
``flip_test``, every network run also sees the image mirrored left to right, and the two score maps
are averaged before decoding (``average_with_mirrored``); the geometry is the unmirrored run's.

``DetectOptions`` holds every detection default and validates it once; the CLIs take their
flag defaults from ``DetectOptions()``. No TensorFlow here: ``predict`` is any batch
function (exported_models.load_predictor).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np

from geometry import (MIN_QUAD_AREA, core_mean_scores, decode_rbox, order_clockwise_from_top_left,
                      polygon_signed_area)
from locality_aware_nms import nms_locality, quad_iou, standard_nms
from network_io import OUTPUT_STRIDE, PIXEL_OFFSET, PIXEL_SCALE, SIZE_MULTIPLE

log = logging.getLogger(__name__)

# EAST-tf2 drops boxes whose first or last edge is under 5 px "to avoid submitting errors".
MIN_BOX_SIDE = 5
THRESHOLD_NAMES = ("score_map_thresh", "box_thresh", "core_thresh", "nms_thres")
# eval.py's and serve.py's zoom_when_empty at the scale a checkpoint records: a photo with no box there is
# looked at again at twice the side, then three and four times it while it still has none, where text too
# small for the network (under the smallest heights its training showed) comes into range. The third and
# fourth looks: README "Results", "looked at again"; bench/bench_quality.py measures it (the "defaults" rows).
ZOOM_WHEN_EMPTY = (2.0, 3.0, 4.0)
# A zoom look that keeps several boxes keeps those the looks just before and after it also found (IoU at least
# this with one of their boxes, before any core filter), when any is: a plate's box is much the same at every
# scale that sees it, while the boxes on a camera's date stamp or a line of sign text break up differently from
# one scale to the next. bench/bench_zoom_rule.py chose it on the train splits (README "Results", "Several boxes
# at a later look").
ZOOM_CONFIRM_IOU = 0.7
# The core_thresh that suits a model trained on synthetic plates only, at the scale its checkpoint records: it
# scores real lamps, badges and signs high enough to pass EAST-tf2's filters (README "Results", "--core_thresh").
# ``make demo`` records it in its checkpoint (train.py --eval_core_thresh), so eval.py and serve.py use it there.
SYNTHETIC_ONLY_CORE_THRESH = 0.75

# uint8 (B, H, W, 3) RGB pixels -> (score_map (B, h, w, 1), geo_map (B, h, w, 5)), numpy float32
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class DetectOptions:
    """Every detection setting and its default, validated once.

    Attributes:
        score_map_thresh: score-map pixels above it become candidate boxes.
        box_thresh: boxes whose mean score inside is at or below it are dropped.
        core_thresh: boxes whose mean score over their core is at or below it are dropped; the core is the
            box shrunk as training shrinks text (geometry.core_mean_scores), where a perfect score map is 1
            whatever the box's size and aspect. 0 keeps them all (EAST-tf2).
        nms_thres: IoU threshold of the locality-aware NMS (and of the multi-scale merge).
        max_side_len: cap on the longer side fed to the network, px.
        test_scales: max_side_len values to run and merge; empty = (max_side_len,).
        zoom_when_empty: increasing factors, each > 1: with one scale, an image with no output box is
            run again with its longer side capped at factor * max_side_len (never above its own size), one
            factor after the other until a run gives boxes, and that run's boxes are kept; () = one run
            (EAST-tf2). A number is one factor (1: one run). Ignored with several test_scales.
        flip_test: run the network on the mirrored image too and decode the mean of the two score maps
            (twice the network time); False = one pass (EAST-tf2).
        zoom_confirm_iou: when a zoom look keeps several boxes, those that no box of the look before it or of
            the next zoom look (run for that) overlaps at this IoU or more are dropped, unless none is
            overlapped so (then all stay); 0 = off. Only zoom looks; the first look's boxes are never checked.

    The four thresholds are probabilities or an IoU: any number in the closed range [0, 1] is
    accepted (0 keeps everything, 1 keeps nothing), NaN is refused. Sides are integers >= 32.
    """

    score_map_thresh: float = 0.8
    box_thresh: float = 0.1
    core_thresh: float = 0.0
    nms_thres: float = 0.2
    max_side_len: int = 2400
    test_scales: tuple[int, ...] = ()
    zoom_when_empty: tuple[float, ...] = ()
    flip_test: bool = False
    zoom_confirm_iou: float = ZOOM_CONFIRM_IOU

    def __post_init__(self):
        for name in (*THRESHOLD_NAMES, "zoom_confirm_iou"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        object.__setattr__(self, "test_scales", tuple(self.test_scales))
        for name, side in [("max_side_len", self.max_side_len)] + [("test_scales", v) for v in self.test_scales]:
            if isinstance(side, bool) or not isinstance(side, int) or side < SIZE_MULTIPLE:
                raise ValueError(f"{name} must be an integer >= {SIZE_MULTIPLE}, got {side!r}")
        object.__setattr__(self, "zoom_when_empty", parse_zoom_when_empty(self.zoom_when_empty))
        if not isinstance(self.flip_test, bool):
            raise ValueError(f"flip_test must be True or False, got {self.flip_test!r}")

    @property
    def scales(self) -> tuple[int, ...]:
        """The max_side_len of each network run, in order."""
        return self.test_scales or (self.max_side_len,)

    @property
    def zoom_sides(self) -> tuple[int, ...]:
        """The max_side_len of each further look at an image with no box (factor * max_side_len)."""
        return tuple(max(SIZE_MULTIPLE, int(self.max_side_len * factor)) for factor in self.zoom_when_empty)


def settle_max_side_len(given: int | None, model_info: dict) -> int:
    """The max_side_len to run a model at: ``given``, else the one its checkpoint records
    (``model_info["max_side_len"]``: the scale its training data and augmentation imply, see
    augmentation.implied_max_side_len), else DetectOptions' default (EAST-tf2's 2400)."""
    if given is not None:
        return int(given)
    return int(model_info.get("max_side_len") or DetectOptions.max_side_len)


def settle_core_thresh(given: float | None, model_info: dict) -> float:
    """The core_thresh to run a model with: ``given``, else the one its checkpoint records
    (``model_info["core_thresh"]``: train.py's --eval_core_thresh, which ``make demo`` sets for its
    synthetic-only model), else DetectOptions' default (0: off, EAST-tf2)."""
    if given is not None:
        return float(given)
    recorded = model_info.get("core_thresh")
    return float(recorded) if recorded is not None else DetectOptions.core_thresh


def parse_zoom_when_empty(value: float | str | Sequence[float]) -> tuple[float, ...]:
    """zoom_when_empty factors from a number, a comma-separated string or a sequence: ``"2,3"`` ->
    (2.0, 3.0); 1, "1" and "" -> () (one run).

    Raises:
        ValueError: a factor is not a finite number >= 1, or the factors do not increase.
    """
    if isinstance(value, str):
        entries = [entry for entry in value.split(",") if entry.strip()]
    else:
        entries = [value] if isinstance(value, (int, float)) else list(value)
    factors = tuple(_zoom_factor(entry, value) for entry in entries)
    factors = tuple(factor for factor in factors if factor > 1.0)
    if any(later <= earlier for earlier, later in zip(factors, factors[1:])):
        raise ValueError(f"zoom_when_empty factors must increase, got {value!r}")
    return factors


def _zoom_factor(entry, value) -> float:
    """One zoom_when_empty factor as a float >= 1 (``value``, the whole setting, names it in the error)."""
    try:
        factor = math.nan if isinstance(entry, bool) else float(entry)
    except (TypeError, ValueError):
        factor = math.nan
    if not 1.0 <= factor < math.inf:
        raise ValueError(f"zoom_when_empty must be finite numbers >= 1 (1: one run), got {value!r}")
    return factor


def settle_zoom_when_empty(given: float | str | Sequence[float] | None, max_side_len_given: bool,
                           test_scales: str | Sequence[int]) -> tuple[float, ...]:
    """The zoom_when_empty factors to run with: ``given``, else ZOOM_WHEN_EMPTY where the side is the one
    the checkpoint records (neither max_side_len nor test_scales given), else () (one run per image, as an
    explicit --max_side_len has always meant)."""
    if given is not None:
        return parse_zoom_when_empty(given)
    return () if max_side_len_given or test_scales else ZOOM_WHEN_EMPTY


def settle_flip_test(given: bool | None, max_side_len_given: bool, test_scales: str | Sequence[int],
                     model_info: dict) -> bool:
    """Whether to average with the mirrored image: ``given``, else True where the side is the one the
    checkpoint records (it records one, and neither max_side_len nor test_scales is given), else False.

    At a model's own scale the mirrored view confirms plates and not the lamps and badges it mistakes
    for them; away from it, where the scores are weaker, the mean loses plates (bench/bench_quality.py,
    README "Results")."""
    if given is not None:
        return bool(given)
    return model_info.get("max_side_len") is not None and not max_side_len_given and not test_scales


def settle_for_model(options: DetectOptions, max_side_len: int | None,
                     zoom_when_empty: float | str | Sequence[float] | None,
                     flip_test: bool | None, core_thresh: float | None, model_info: dict) -> DetectOptions:
    """``options`` with the settings that depend on the model settled from the given flag values (None:
    not given) and what the model records (``model_info``, {} before it is loaded): max_side_len,
    zoom_when_empty, flip_test and core_thresh (settle_max_side_len, settle_zoom_when_empty,
    settle_flip_test, settle_core_thresh). The other thresholds and test_scales are kept."""
    side_given = max_side_len is not None
    return dataclasses.replace(
        options, max_side_len=settle_max_side_len(max_side_len, model_info),
        core_thresh=settle_core_thresh(core_thresh, model_info),
        zoom_when_empty=settle_zoom_when_empty(zoom_when_empty, side_given, options.test_scales),
        flip_test=settle_flip_test(flip_test, side_given, options.test_scales, model_info))


def parse_test_scales(text: str) -> tuple[int, ...]:
    """``"256,512,1024"`` -> (256, 512, 1024); "" -> ().

    Raises:
        ValueError: an entry is not an integer (the name of the flag and the entry are quoted).
    """
    scales = []
    for entry in (part.strip() for part in str(text or "").split(",")):
        if not entry:
            continue
        try:
            scales.append(int(entry))
        except ValueError:
            raise ValueError(f"test_scales must be comma-separated integers (max_side_len values), "
                             f"got {entry!r} in {text!r}") from None
    return tuple(scales)


def input_hw(image_hw: tuple[int, int], max_side_len: int) -> tuple[int, int]:
    """The network input (h, w) for an image of ``image_hw`` (see resize_for_inference)."""
    height, width = image_hw
    ratio = min(1.0, float(max_side_len) / max(height, width))
    return (max(SIZE_MULTIPLE, int(height * ratio) // SIZE_MULTIPLE * SIZE_MULTIPLE),
            max(SIZE_MULTIPLE, int(width * ratio) // SIZE_MULTIPLE * SIZE_MULTIPLE))


def resize_for_inference(image_rgb, max_side_len: int = DetectOptions().max_side_len
                         ) -> tuple[np.ndarray, tuple[float, float]]:
    """Resizes an image so both sides are multiples of 32 (EAST-tf2 ``resize_image``).

    The longer side is first capped at ``max_side_len``, then each side is
    rounded down to a multiple of SIZE_MULTIPLE, but never below it.

    Args:
      image_rgb: uint8 (H, W, 3).
      max_side_len: cap on the longer side, in px.

    Returns:
      (resized uint8 (h, w, 3), (ratio_h, ratio_w)) with ratio = new / original size.
    """
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image_rgb must be (H, W, 3), got shape {image.shape}")
    if max_side_len < SIZE_MULTIPLE:
        raise ValueError(f"max_side_len must be at least {SIZE_MULTIPLE}, got {max_side_len}")
    height, width = image.shape[:2]
    resize_h, resize_w = input_hw((height, width), max_side_len)
    if (resize_h, resize_w) != (height, width):
        image = cv2.resize(image, (resize_w, resize_h))
    return image, (resize_h / float(height), resize_w / float(width))


def normalize_image(image) -> np.ndarray:
    """EAST-tf2's input scaling, pixel / 127.5 - 1 (float32 in [-1, 1]), for reference code only.

    Our networks take pixel values and scale them themselves (model.PixelAdapter); this is
    what benchmarks feed EAST-tf2's own model.
    """
    return np.asarray(image, dtype=np.float32) * PIXEL_SCALE + PIXEL_OFFSET


def average_with_mirrored(score_maps, mirrored_score_maps) -> np.ndarray:
    """The mean of score maps and those of the same inputs mirrored left to right, on the unmirrored grid.

    Map column k stands for input column x = OUTPUT_STRIDE * k (geometry.py); mirrored, that column is
    x' = W - 1 - x, which falls between map columns w - 1 - k and w - k of the mirrored run (3/4 of the way
    for the stride 4). The mirrored map is read there by linear interpolation (the last column repeated
    past the edge).

    Args:
        score_maps: (B, h, w, 1) scores of the inputs, w = W / OUTPUT_STRIDE.
        mirrored_score_maps: (B, h, w, 1) scores of the same inputs with their columns reversed.

    Returns:
        float32 (B, h, w, 1).
    """
    scores = np.asarray(score_maps, np.float32)
    reversed_maps = np.asarray(mirrored_score_maps, np.float32)[:, :, ::-1]
    # reversed_maps[:, :, k] is mirrored column w - 1 - k; the next one (w - k) is reversed column k - 1.
    next_column = np.concatenate([reversed_maps[:, :, :1], reversed_maps[:, :, :-1]], axis=2)
    fraction = (OUTPUT_STRIDE - 1) / OUTPUT_STRIDE
    unmirrored = (1.0 - fraction) * reversed_maps + fraction * next_column
    return (scores + unmirrored) / 2.0


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
    score_map_thresh: float = DetectOptions().score_map_thresh,
    box_thresh: float = DetectOptions().box_thresh,
    core_thresh: float = DetectOptions().core_thresh,
    nms_thres: float = DetectOptions().nms_thres,
    timings: dict | None = None,
) -> np.ndarray:
    """Text boxes from one image's network outputs (EAST-tf2 ``detect``).

    Steps: ``decode_rbox`` (pixels with score > score_map_thresh), locality-aware
    NMS (IoU nms_thres), then each box's score becomes the mean score-map value
    inside it and boxes whose mean is <= box_thresh are dropped; with core_thresh > 0,
    so are boxes whose core scores <= core_thresh on average (``geometry.core_mean_scores``).

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
        boxes = _core_filtered(score_map, boxes[boxes[:, 8] > box_thresh], core_thresh)
    if timings is not None:
        timings["decode"] = decoded - start
        timings["nms"] = time.perf_counter() - decoded
    return boxes


def _core_filtered(score_map: np.ndarray, boxes: np.ndarray, core_thresh: float) -> np.ndarray:
    """``boxes`` (N, 9, network px) whose core scores above core_thresh on average on the (h, w)
    ``score_map`` (geometry.core_mean_scores); all of them when core_thresh is 0."""
    if core_thresh <= 0 or not len(boxes):
        return boxes
    return boxes[core_mean_scores(score_map, boxes[:, :8].reshape(-1, 4, 2)) > core_thresh]


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


def to_output_quads(boxes, ratio_h: float, ratio_w: float, min_side: float = MIN_BOX_SIDE,
                    image_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes in network-input px to the integer quads written to result files.

    Args:
        boxes: float32 (N, 9) in network-input px (ratios 1.0 for boxes already in original px).
        ratio_h, ratio_w: resized / original size, from ``resize_for_inference``.
        min_side: boxes whose first or last edge is shorter (px, after rounding) are
            dropped, as EAST-tf2 does; also drops quads that rounding or clipping made degenerate.
        image_hw: original (height, width); corners are clipped to [0, width - 1] x
            [0, height - 1] (a box the network extends past the border stays inside the image).
            None leaves them unclipped.

    Returns:
        int32 (M, 4, 2) original-image px clockwise from the top-left point, and
        their float32 (M,) scores; M <= N, input order kept. Empty -> (0, 4, 2), (0,).
    """
    if not len(boxes):
        return np.zeros((0, 4, 2), np.int32), np.zeros(0, np.float32)
    boxes = np.asarray(boxes)
    quads = boxes_to_original(boxes, ratio_h, ratio_w)
    if image_hw is not None:
        height, width = image_hw
        quads = np.clip(quads, 0, np.array([width - 1, height - 1], quads.dtype))
    quads = order_clockwise_from_top_left(np.rint(quads)).astype(np.int32)
    first_edge = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=-1)
    last_edge = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=-1)
    keep = (first_edge >= min_side) & (last_edge >= min_side)
    keep &= np.abs(polygon_signed_area(quads.astype(np.float32))) >= MIN_QUAD_AREA
    return quads[keep], boxes[keep, 8].astype(np.float32)


def confirmed_by(quads, other_quads, min_iou: float) -> np.ndarray:
    """Which of ``quads`` some quad of ``other_quads`` overlaps at IoU >= min_iou.

    Args:
        quads: (N, 4, 2) convex quads, px.
        other_quads: (M, 4, 2) convex quads in the same px (another look's boxes).
        min_iou: in [0, 1].

    Returns:
        bool (N,); all False when M is 0.
    """
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    other_quads = np.asarray(other_quads, np.float64).reshape(-1, 4, 2)
    if not len(quads) or not len(other_quads):
        return np.zeros(len(quads), bool)
    pairs_a = np.repeat(quads, len(other_quads), axis=0)
    pairs_b = np.tile(other_quads, (len(quads), 1, 1))
    return (quad_iou(pairs_a, pairs_b).reshape(len(quads), len(other_quads)) >= min_iou).any(axis=1)


def merge_scales(boxes_per_scale: Sequence[np.ndarray], nms_thres: float) -> np.ndarray:
    """One box list from several scales' boxes, all in original px: standard NMS on the union.

    Args:
        boxes_per_scale: float32 (N_i, 9) each, corners in original px and the mean score.
        nms_thres: IoU above which the lower-scoring of two boxes is dropped.

    Returns:
        float32 (M, 9) by decreasing score. Empty -> (0, 9).
    """
    union = [np.asarray(boxes, np.float32).reshape(-1, 9) for boxes in boxes_per_scale]
    return standard_nms(np.concatenate(union) if union else np.zeros((0, 9), np.float32), nms_thres)


@dataclasses.dataclass
class Detection:
    """One image's detections.

    Attributes:
        quads: int32 (N, 4, 2) original-image px, clockwise from the top-left point.
        scores: float32 (N,) mean score-map value inside each box.
        input_hw: network input (h, w) of the first scale (of the zoomed run, where its boxes are kept).
        seconds: "resize", "network", "decode", "nms" (summed over scales).
    """

    quads: np.ndarray
    scores: np.ndarray
    input_hw: tuple[int, int]
    seconds: dict[str, float]


class _Run(NamedTuple):
    """One network run of one image at one side.

    Attributes:
        boxes: float32 (N, 9) network-input px and mean score, every filter applied.
        ratios: (ratio_h, ratio_w) from resize_for_inference.
        input_hw: network input (h, w).
        unfiltered: float32 (M, 9) the same before the core filter (M >= N).
    """

    boxes: np.ndarray
    ratios: tuple[float, float]
    input_hw: tuple[int, int]
    unfiltered: np.ndarray


class Detector:
    """The inference pipeline: pixels in, output quads out (see the module docstring).

    Args:
        predict: batch function uint8 (B, H, W, 3) RGB -> (score_map (B, h, w, 1), geo_map (B, h, w, 5)).
        options: thresholds, max_side_len and test_scales.
    """

    def __init__(self, predict: Predictor, options: DetectOptions = DetectOptions()):
        self.predict = predict
        self.options = options

    def _boxes(self, score_map, geo_map, seconds: dict) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, the same before the core filter) of one image's maps (detect_boxes)."""
        timings: dict[str, float] = {}
        unfiltered = detect_boxes(score_map, geo_map, score_map_thresh=self.options.score_map_thresh,
                                  box_thresh=self.options.box_thresh, core_thresh=0.0,
                                  nms_thres=self.options.nms_thres, timings=timings)
        start = time.perf_counter()
        boxes = _core_filtered(np.asarray(score_map, np.float32).reshape(score_map.shape[:2]), unfiltered,
                               self.options.core_thresh)
        timings["nms"] += time.perf_counter() - start  # detect_boxes counts its filters as NMS too
        for key, value in timings.items():
            seconds[key] = seconds.get(key, 0.0) + value
        return boxes, unfiltered

    def _network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score maps, geo maps) of a uint8 (B, H, W, 3) batch; with flip_test, the scores are averaged
        with those of the mirrored batch (a second network call)."""
        score_maps, geo_maps = self.predict(batch)
        if not self.options.flip_test:
            return score_maps, geo_maps
        mirrored_scores, _ = self.predict(np.ascontiguousarray(batch[:, :, ::-1]))
        return average_with_mirrored(score_maps, mirrored_scores), geo_maps

    def _run_scale(self, images_rgb: Sequence[np.ndarray], max_side_len: int, seconds: list[dict]) -> list[_Run]:
        """One _Run per image at one scale; consecutive equal sizes share a network call."""
        prepared = []
        for image_rgb, timing in zip(images_rgb, seconds):
            start = time.perf_counter()
            prepared.append(resize_for_inference(image_rgb, max_side_len=max_side_len))
            timing["resize"] = timing.get("resize", 0.0) + time.perf_counter() - start
        results: list = []
        while len(results) < len(prepared):
            first = len(results)
            last = first + 1
            while last < len(prepared) and prepared[last][0].shape == prepared[first][0].shape:
                last += 1
            start = time.perf_counter()
            score_maps, geo_maps = self._network(np.stack([image for image, _ in prepared[first:last]]))
            share = (time.perf_counter() - start) / (last - first)
            for offset, index in enumerate(range(first, last)):
                seconds[index]["network"] = seconds[index].get("network", 0.0) + share
                boxes, unfiltered = self._boxes(score_maps[offset], geo_maps[offset], seconds[index])
                results.append(_Run(boxes, prepared[index][1], tuple(int(side) for side in prepared[index][0].shape[:2]),
                                    unfiltered))
        return results

    def _detection(self, image_rgb: np.ndarray, runs: list[_Run], seconds: dict) -> Detection:
        """One image's Detection from its runs (one per scale)."""
        if len(runs) == 1:
            quads, scores = to_output_quads(runs[0].boxes, *runs[0].ratios, image_hw=image_rgb.shape[:2])
        else:
            start = time.perf_counter()
            merged = merge_scales([_boxes_in_original(run.boxes, run.ratios) for run in runs], self.options.nms_thres)
            seconds["nms"] += time.perf_counter() - start  # the merge counts as NMS
            quads, scores = to_output_quads(merged, 1.0, 1.0, image_hw=image_rgb.shape[:2])
        return Detection(quads, scores, runs[0].input_hw, seconds)

    def _zoom_where_empty(self, images_rgb: Sequence[np.ndarray], detections: list[Detection],
                          first_runs: list[_Run]) -> None:
        """Runs the images with no output box again at each of options.zoom_sides in turn (those whose
        input would grow past their last look) and puts the first new Detection that has a box in
        ``detections``; an image with none after every look keeps its first. With zoom_confirm_iou, a look
        that keeps several boxes waits for the next look that grows (if any) and keeps those confirmed by
        it or by the look before (``_keep_confirmed``)."""
        last_run = list(first_runs)
        waiting: dict[int, _Run] = {}  # image -> the look before the one whose boxes await confirmation
        for side in self.options.zoom_sides:
            todo = [index for index, detection in enumerate(detections) if (not len(detection.quads) or index in waiting)
                    and input_hw(images_rgb[index].shape[:2], side) != last_run[index].input_hw]
            if not todo:
                continue
            zoomed = self._run_scale([images_rgb[index] for index in todo], side,
                                     [detections[index].seconds for index in todo])
            for index, run in zip(todo, zoomed):
                if index in waiting:
                    detections[index] = self._keep_confirmed(detections[index], [waiting.pop(index), run],
                                                             images_rgb[index].shape[:2])
                    continue
                detection = self._detection(images_rgb[index], [run], detections[index].seconds)
                if len(detection.quads):
                    detections[index] = detection
                    if self.options.zoom_confirm_iou > 0 and len(detection.quads) > 1:
                        waiting[index] = last_run[index]
                last_run[index] = run
        for index, previous in waiting.items():  # found at the last look that grows: the one before confirms
            detections[index] = self._keep_confirmed(detections[index], [previous], images_rgb[index].shape[:2])

    def _keep_confirmed(self, detection: Detection, neighbours: list[_Run], image_hw: tuple[int, int]) -> Detection:
        """``detection`` less the boxes no box of ``neighbours`` (before their core filter) overlaps at
        options.zoom_confirm_iou, unless that would leave none (``confirmed_by``)."""
        others = [to_output_quads(run.unfiltered, *run.ratios, image_hw=image_hw)[0] for run in neighbours]
        confirmed = confirmed_by(detection.quads, np.concatenate(others), self.options.zoom_confirm_iou)
        if not confirmed.any():
            return detection
        return dataclasses.replace(detection, quads=detection.quads[confirmed], scores=detection.scores[confirmed])

    def detect_batch(self, images_rgb: Sequence[np.ndarray]) -> list[Detection]:
        """Detections for several images; at each scale, consecutive images of one input size share a call.

        Args:
            images_rgb: uint8 (H, W, 3) RGB images.

        Returns:
            One Detection per image, in input order.
        """
        seconds: list[dict] = [{} for _ in images_rgb]
        per_scale = [self._run_scale(images_rgb, side, seconds) for side in self.options.scales]
        detections = [self._detection(image_rgb, [scale_results[index] for scale_results in per_scale], seconds[index])
                      for index, image_rgb in enumerate(images_rgb)]
        if len(per_scale) == 1 and self.options.zoom_when_empty:
            self._zoom_where_empty(images_rgb, detections, per_scale[0])
        return detections

    def __call__(self, image_rgb: np.ndarray) -> Detection:
        """Detections for one uint8 (H, W, 3) RGB image (``detect_batch`` of one)."""
        return self.detect_batch([image_rgb])[0]


def _boxes_in_original(boxes: np.ndarray, ratios: tuple[float, float]) -> np.ndarray:
    """(N, 9) network-px boxes -> (N, 9) original-px boxes, score kept."""
    if not len(boxes):
        return np.zeros((0, 9), np.float32)
    quads = boxes_to_original(boxes, *ratios).reshape(-1, 8)
    return np.concatenate([quads, boxes[:, 8:9]], axis=1).astype(np.float32)
