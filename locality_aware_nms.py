"""Locality-aware NMS (EAST): merge neighbouring boxes, then standard polygon NMS.

Two interchangeable backends:

* ``"lanms"``: the C++ implementation from the optional ``lanms-contrib`` wheel
  (``lanms.merge_quadrangle_n9``);
* ``"python"``: numpy only, the same algorithm step for step, including
  lanms's vertex re-matching before a merge. Overlaps are computed for many
  pairs at once by clipping convex quads (Sutherland-Hodgman) in numpy, so
  there is no per-box GEOS call. It is exact for convex quads, which is what
  ``geometry.decode_rbox`` produces (rectangles). lanms works on coordinates
  rounded to 1e-4 px and accumulates in float32, so the two agree to about
  0.01-0.1 px on long merge runs, not to the last bit.

``"auto"`` picks the python backend: measured by bench/bench_geometry.py it
is several times faster than the C++ wheel (lanms runs a polygon union and
intersection per pair and a quadratic NMS), and tests show both return the
same boxes. Ask for ``backend="lanms"`` to use the wheel anyway.

Boxes are float32 ``(N, 9)``: ``x1, y1, ..., x4, y4`` (px) and a score.
"""
from __future__ import annotations

import logging

import numpy as np

import geometry

log = logging.getLogger(__name__)

try:
    import lanms as _lanms
except ImportError:  # the wheel is optional: the python backend needs no build
    _lanms = None

BACKENDS = ("auto", "lanms", "python")
LANMS_AVAILABLE = _lanms is not None

# Candidates examined per vectorized step of the merge pass.
_MIN_CHUNK = 64
_MAX_CHUNK = 4096


def _check_boxes(boxes, name: str = "boxes") -> np.ndarray:
    array = np.asarray(boxes)
    if array.size == 0 and array.ndim >= 1 and (array.ndim == 1 or array.shape[-1] in (0, 9)):
        return np.zeros((0, 9), np.float32)
    if array.ndim != 2 or array.shape[1] != 9:
        raise ValueError(f"{name} must be (N, 9): 8 corner coordinates and a score, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def _check_threshold(nms_thres: float) -> float:
    value = float(nms_thres)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"nms_thres must be an IoU in [0, 1], got {nms_thres!r}")
    return value


# --------------------------------------------------------------------------- #
# vectorized convex-quad overlap
# --------------------------------------------------------------------------- #
def _clip_by_edge(subject: np.ndarray, start: np.ndarray, end: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """One Sutherland-Hodgman step: keep the part of each polygon left of start->end.

    Args:
      subject: (M, K, 2) polygons, unused slots repeat a used vertex.
      start, end: (M, 2) the clipping edge; sign: (M,) +1 or -1, the clip quad's orientation.

    Returns:
      (M, K + 1, 2) clipped polygons in the same padded form (all zeros when empty).
    """
    count, slots = subject.shape[:2]
    edge = (end - start)[:, None, :]
    side = sign[:, None] * (
        edge[..., 0] * (subject[..., 1] - start[:, None, 1]) - edge[..., 1] * (subject[..., 0] - start[:, None, 0])
    )
    inside = side >= 0
    following = np.roll(subject, -1, axis=1)
    side_next = np.roll(side, -1, axis=1)
    crossing = inside != np.roll(inside, -1, axis=1)
    denominator = np.where(crossing, side - side_next, 1.0)
    fraction = np.where(crossing, side / denominator, 0.0)
    crossing_point = subject + fraction[..., None] * (following - subject)
    candidates = np.stack([subject, crossing_point], axis=2).reshape(count, 2 * slots, 2)
    keep = np.stack([inside, crossing], axis=2).reshape(count, 2 * slots)
    order = np.argsort(~keep, axis=1, kind="stable")[:, : slots + 1]
    compact = np.take_along_axis(candidates, order[..., None], axis=1)
    kept = np.minimum(keep.sum(axis=1), slots + 1)
    # pad with the last kept vertex so the shoelace sum ignores the padding
    last = np.take_along_axis(compact, np.maximum(kept - 1, 0)[:, None, None], axis=1)
    padding = np.arange(slots + 1)[None, :] >= kept[:, None]
    compact = np.where(padding[..., None], last, compact)
    return np.where((kept > 0)[:, None, None], compact, 0.0)


_NEXT_CORNER = np.array([1, 2, 3, 0])


def _separated(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """(M,) whether convex quads are disjoint along one of their 8 edge normals.

    Corner-major inputs: ax[k] is the x of corner k of every quad A, shape (4, M).
    """
    separated = np.zeros(ax.shape[1], bool)
    for px, py in ((ax, ay), (bx, by)):
        normal_x = py - py[_NEXT_CORNER]
        normal_y = px[_NEXT_CORNER] - px
        for corner in range(4):
            project_a = ax * normal_x[corner] + ay * normal_y[corner]
            project_b = bx * normal_x[corner] + by * normal_y[corner]
            separated |= (project_a.min(axis=0) >= project_b.max(axis=0)) | (
                project_b.min(axis=0) >= project_a.max(axis=0)
            )
    return separated


def _iou_exceeds(quads_a: np.ndarray, quads_b: np.ndarray, nms_thres: float) -> np.ndarray:
    """(M,) whether IoU(quads_a[i], quads_b[i]) > nms_thres, for convex quads.

    Most pairs are settled by cheap tests and only the rest are clipped:
    bounding boxes cap the intersection; when corresponding corners are at
    most ``delta`` apart every point of one quad is within ``delta`` of the
    other, so each loses or gains at most ``perimeter * delta + pi * delta**2``
    of area; a separating edge normal proves the quads disjoint.
    """
    quads_a, quads_b = np.broadcast_arrays(quads_a, quads_b)
    # corner-major (4, M) copies make the reductions over corners cheap
    ax, ay = np.ascontiguousarray(quads_a[..., 0].T), np.ascontiguousarray(quads_a[..., 1].T)
    bx, by = np.ascontiguousarray(quads_b[..., 0].T), np.ascontiguousarray(quads_b[..., 1].T)
    area_a = 0.5 * np.abs(np.sum(ax * ay[_NEXT_CORNER] - ax[_NEXT_CORNER] * ay, axis=0))
    area_b = 0.5 * np.abs(np.sum(bx * by[_NEXT_CORNER] - bx[_NEXT_CORNER] * by, axis=0))
    box_w = np.minimum(ax.max(axis=0), bx.max(axis=0)) - np.maximum(ax.min(axis=0), bx.min(axis=0))
    box_h = np.minimum(ay.max(axis=0), by.max(axis=0)) - np.maximum(ay.min(axis=0), by.min(axis=0))
    most = np.minimum(np.minimum(area_a, area_b), np.maximum(box_w, 0) * np.maximum(box_h, 0))
    surely_not = most <= nms_thres * (area_a + area_b - most)
    delta = np.sqrt(np.max((ax - bx) ** 2 + (ay - by) ** 2, axis=0))
    perimeter_a = np.sum(np.hypot(ax[_NEXT_CORNER] - ax, ay[_NEXT_CORNER] - ay), axis=0)
    perimeter_b = np.sum(np.hypot(bx[_NEXT_CORNER] - bx, by[_NEXT_CORNER] - by), axis=0)
    slack = np.pi * delta**2
    least = area_a - perimeter_b * delta - slack
    surely = (least > 0) & (least > nms_thres * (area_a + perimeter_a * delta + slack))
    result = surely & ~surely_not
    unsure = np.flatnonzero(~surely & ~surely_not)
    if unsure.size:
        disjoint = _separated(ax[:, unsure], ay[:, unsure], bx[:, unsure], by[:, unsure])
        unsure = unsure[~disjoint]
    if unsure.size:
        result[unsure] = quad_iou(quads_a[unsure], quads_b[unsure]) > nms_thres
    return result


def quad_iou(quads_a, quads_b) -> np.ndarray:
    """IoU of convex quads, pair by pair (broadcasting a single quad against many).

    Args:
      quads_a, quads_b: (M, 4, 2) or (4, 2) pixel xy, either orientation.

    Returns:
      float64 (M,) intersection over union; 0 where the union is empty.
    """
    quads_a = np.asarray(quads_a, dtype=np.float64)
    quads_b = np.asarray(quads_b, dtype=np.float64)
    quads_a, quads_b = np.broadcast_arrays(quads_a.reshape(-1, 4, 2), quads_b.reshape(-1, 4, 2))
    area_a = np.abs(geometry.shoelace_areas(quads_a))
    signed_b = geometry.shoelace_areas(quads_b)
    sign = np.where(signed_b >= 0, 1.0, -1.0)
    clipped = quads_a
    for corner in range(4):
        clipped = _clip_by_edge(clipped, quads_b[:, corner], quads_b[:, (corner + 1) % 4], sign)
    intersection = np.abs(geometry.shoelace_areas(clipped))
    union = area_a + np.abs(signed_b) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


# --------------------------------------------------------------------------- #
# python backend
# --------------------------------------------------------------------------- #
_REVERSED_FROM_0 = np.array([3, 2, 1, 0])  # lanms normalize_poly, start 0, reversed
_REVERSED_FROM_1 = np.array([0, 3, 2, 1])  # start 1, reversed (as lanms writes it)
_COMPARED_FROM_1 = np.array([1, 0, 3, 2])  # ...which lanms scores with this pairing


def _lanms_vertex_order(reference: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Which vertex order lanms gives each quad before merging it into ``reference``.

    lanms's normalize_poly compares the identity order with two reversed
    orders (its other cyclic shifts score the same as these) and keeps the
    first strict minimum. Returns (M,) 0 = identity, 1 / 2 = the reversed orders.
    """
    d_identity = np.sum((reference - quads) ** 2, axis=(-1, -2))
    d_reversed_0 = np.sum((reference - quads[..., _REVERSED_FROM_0, :]) ** 2, axis=(-1, -2))
    d_reversed_1 = np.sum((reference - quads[..., _COMPARED_FROM_1, :]) ** 2, axis=(-1, -2))
    choice = np.zeros(d_identity.shape, np.int8)
    best = d_identity
    choice = np.where(d_reversed_0 < best, 1, choice)
    best = np.minimum(best, d_reversed_0)
    return np.where(d_reversed_1 < best, 2, choice)


def _reorder(quad: np.ndarray, choice: int) -> np.ndarray:
    if choice == 1:
        return quad[_REVERSED_FROM_0]
    if choice == 2:
        return quad[_REVERSED_FROM_1]
    return quad


def _merged_row(weighted_sum: np.ndarray, score: float) -> np.ndarray:
    """(9,) row of a merged box: score-weighted mean corners (4, 2) and the summed score."""
    return np.append((weighted_sum / max(score, 1e-8)).ravel(), score)


def _guessed_runs(weighted: np.ndarray, scores: np.ndarray, breaks: np.ndarray, seed_sum: np.ndarray,
                  seed_score: float):
    """Running boxes of a window of candidates under a guess of where runs break.

    Args:
        weighted: (K, 4, 2) score-weighted corners of the window's candidates; scores: (K,).
        breaks: (K,) bool, the guess: candidate k starts a new run (breaks[0] is False).
        seed_sum, seed_score: the running box carried into the window (its run includes the seed).

    Returns:
        starts (K,): offset of the first member of candidate k's run (0 = the seed's run);
        cum_sum (K+1, 4, 2), cum_score (K+1,): prefix sums of weighted and scores;
        run_sum (K, 4, 2), run_score (K,): the running box candidate k is compared with (candidate 0:
        the seed alone).
    """
    count = len(scores)
    member_offsets = np.arange(count)
    starts = np.maximum.accumulate(np.where(breaks, member_offsets, 0))
    cum_sum = np.concatenate([np.zeros((1, 4, 2)), np.cumsum(weighted, axis=0)])
    cum_score = np.concatenate([[0.0], np.cumsum(scores)])
    previous_start = np.concatenate([[0], starts[:-1]])  # run of candidate k-1
    in_seed_run = previous_start == 0
    run_sum = cum_sum[member_offsets] - cum_sum[previous_start] + np.where(in_seed_run[:, None, None], seed_sum, 0.0)
    run_score = cum_score[member_offsets] - cum_score[previous_start] + np.where(in_seed_run, seed_score, 0.0)
    run_sum[0], run_score[0] = seed_sum, seed_score
    return starts, cum_sum, cum_score, run_sum, run_score


def _merge_consecutive(boxes: np.ndarray, nms_thres: float) -> np.ndarray:
    """First pass: merge each box into the running box while their IoU > nms_thres.

    The pass is sequential (each decision depends on the running box), but it
    is run many boxes at a time by speculation: guess that a run breaks exactly
    where a box does not overlap its predecessor, compute every running box of
    that guess with segmented cumulative sums, and check every decision against
    its running box in one vectorized call. Everything before the first wrong
    guess is final; that box is settled on its own and the pass resumes after it.
    """
    quads = boxes[:, :8].astype(np.float64).reshape(-1, 4, 2)
    scores = boxes[:, 8].astype(np.float64)
    weighted = quads * scores[:, None, None]
    total = len(quads)
    guess_break = np.ones(total, bool)
    guess_break[1:] = ~_iou_exceeds(quads[1:], quads[:-1], nms_thres)
    merged = []
    seed_sum, seed_score = weighted[0], scores[0]  # the running box is seed_sum / seed_score
    position, window = 1, _MIN_CHUNK
    while position < total:
        stop = min(total, position + window)
        breaks = guess_break[position:stop].copy()
        breaks[0] = False  # the first candidate is compared with the seed's run
        count = stop - position
        starts, cum_sum, cum_score, run_sum, run_score = _guessed_runs(
            weighted[position:stop], scores[position:stop], breaks, seed_sum, seed_score)
        running = run_sum / np.maximum(run_score, 1e-8)[:, None, None]
        overlaps = _iou_exceeds(quads[position:stop], running, nms_thres)
        order = _lanms_vertex_order(running, quads[position:stop])
        consistent = (overlaps != breaks) & (~overlaps | (order == 0))
        wrong = int(np.argmin(consistent)) if not consistent.all() else count
        # close every run that ended before `wrong`
        closed = np.flatnonzero(breaks[:wrong])
        for offset in closed:
            merged.append(_merged_row(run_sum[offset], run_score[offset]))
        if wrong == count:
            last_start = starts[-1]
            if last_start == 0:
                seed_sum = seed_sum + cum_sum[count]
                seed_score = seed_score + cum_score[count]
            else:
                seed_sum = cum_sum[count] - cum_sum[last_start]
                seed_score = cum_score[count] - cum_score[last_start]
            position = stop
            window = min(window * 2, _MAX_CHUNK)
            continue
        index = position + wrong
        current_sum, current_score = run_sum[wrong], run_score[wrong]
        if overlaps[wrong]:  # merges (lanms first re-matches its vertices)
            seed_sum = current_sum + _reorder(quads[index], order[wrong]) * scores[index]
            seed_score = current_score + scores[index]
        else:
            merged.append(_merged_row(current_sum, current_score))
            seed_sum, seed_score = weighted[index], scores[index]
        position = index + 1
        window = max(_MIN_CHUNK, min(2 * (wrong + 1), _MAX_CHUNK))
    merged.append(_merged_row(seed_sum, seed_score))
    return np.asarray(merged, dtype=np.float64)


def _overlapping_pairs(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, whose axis-aligned bounding boxes overlap (each pair once)."""
    low, high = quads.min(axis=1), quads.max(axis=1)
    by_left = np.argsort(low[:, 0], kind="stable")
    left_sorted = low[by_left, 0]
    # candidates of box k (in x order) are the boxes after it whose left edge <= its right edge
    reach = np.searchsorted(left_sorted, high[by_left, 0], side="right")
    counts = np.maximum(reach - np.arange(len(quads)) - 1, 0)
    first = np.repeat(np.arange(len(quads)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    second = first + 1 + offsets
    first, second = by_left[first], by_left[second]
    y_overlap = (low[first, 1] <= high[second, 1]) & (low[second, 1] <= high[first, 1])
    return first[y_overlap], second[y_overlap]


def _standard_nms_python(boxes: np.ndarray, nms_thres: float) -> np.ndarray:
    quads = boxes[:, :8].reshape(-1, 4, 2).astype(np.float64)
    first, second = _overlapping_pairs(quads)
    suppresses = _iou_exceeds(quads[first], quads[second], nms_thres)
    first, second = first[suppresses], second[suppresses]
    neighbours = [[] for _ in range(len(quads))]
    for i, j in zip(first.tolist(), second.tolist()):
        neighbours[i].append(j)
        neighbours[j].append(i)
    suppressed = np.zeros(len(quads), bool)
    keep = []
    for index in np.argsort(-boxes[:, 8], kind="stable").tolist():
        if not suppressed[index]:
            keep.append(index)
            suppressed[neighbours[index]] = True
    return boxes[np.asarray(keep, dtype=np.int64)]


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def standard_nms(boxes, nms_thres: float) -> np.ndarray:
    """Polygon NMS: keep the best-scoring box, drop boxes with IoU > nms_thres, repeat.

    Args:
      boxes: (N, 9) corners (px) and score.
      nms_thres: IoU above which a lower-scoring box is suppressed.

    Returns:
      float32 (M, 9), the kept boxes by decreasing score. Empty -> (0, 9).
    """
    boxes = _check_boxes(boxes)
    nms_thres = _check_threshold(nms_thres)
    if len(boxes) == 0:
        return np.zeros((0, 9), np.float32)
    return _standard_nms_python(boxes.astype(np.float64), nms_thres).astype(np.float32)


def nms_locality(boxes, nms_thres: float, *, backend: str = "auto") -> np.ndarray:
    """Locality-aware NMS: merge consecutive overlapping boxes, then standard NMS.

    Consecutive boxes (in row order, as ``geometry.decode_rbox`` emits them)
    whose IoU with the running merged box exceeds ``nms_thres`` are merged into
    it: coordinates averaged with the scores as weights, scores summed.

    Args:
      boxes: (N, 9) corners x1, y1, ..., x4, y4 (px) and score, in row order.
      nms_thres: IoU threshold of both the merge and the suppression (default: postprocess.DetectOptions).
      backend: "python" (numpy), "lanms" (the C++ wheel), or "auto" (python: the faster one).

    Returns:
      float32 (M, 9) merged boxes, by decreasing (summed) score. Empty -> (0, 9).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    boxes = _check_boxes(boxes)
    nms_thres = _check_threshold(nms_thres)
    if backend == "lanms" and _lanms is None:
        raise ValueError("backend='lanms' needs the lanms-contrib wheel (pip install lanms-contrib)")
    if len(boxes) == 0:
        return np.zeros((0, 9), np.float32)
    if backend == "lanms":
        result = _lanms.merge_quadrangle_n9(np.ascontiguousarray(boxes, dtype=np.float32), nms_thres)
        return np.asarray(result, dtype=np.float32).reshape(-1, 9)
    merged = _merge_consecutive(boxes, nms_thres)
    return _standard_nms_python(merged, nms_thres).astype(np.float32)
