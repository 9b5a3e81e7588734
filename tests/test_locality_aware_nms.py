"""Locality-aware NMS: both backends against a plain reference (numpy + shapely, no TensorFlow)."""
import numpy as np
import pytest
import shapely

import locality_aware_nms
from locality_aware_nms import LANMS_AVAILABLE, nms_locality, quad_iou, standard_nms

needs_lanms = pytest.mark.skipif(not LANMS_AVAILABLE, reason="lanms-contrib is not installed")


# --------------------------------------------------------------------------- #
# a plain, box-by-box reference of the same algorithm
# --------------------------------------------------------------------------- #
def reference_iou(box_a, box_b):
    a = shapely.Polygon(np.asarray(box_a[:8], float).reshape(4, 2))
    b = shapely.Polygon(np.asarray(box_b[:8], float).reshape(4, 2))
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def reference_vertex_order(reference, quad):
    """lanms normalize_poly, written out as in the C++ source.

    Distances are exact integers on a 1e-4 px grid, as in lanms (in floats the
    four equal sums of the unflipped order differ in the last bit).
    """
    ref_grid = [(int(x), int(y)) for x, y in np.round(np.asarray(reference) * 1e4)]
    quad_grid = [(int(x), int(y)) for x, y in np.round(np.asarray(quad) * 1e4)]

    def sqdist(p, q):
        return (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2

    best, best_start, best_order = None, 0, 0
    for start in range(4):
        same = sum(sqdist(ref_grid[(start + i) % 4], quad_grid[(start + i) % 4]) for i in range(4))
        if best is None or same < best:
            best, best_start, best_order = same, start, 0
        flipped = sum(sqdist(ref_grid[(start + i) % 4], quad_grid[(start + 3 - i) % 4]) for i in range(4))
        if flipped < best:
            best, best_start, best_order = flipped, start, 1
    if best_order == 0:
        return np.array([quad[(best_start + i) % 4] for i in range(4)])
    return np.array([quad[(best_start + 4 - i - 1) % 4] for i in range(4)])


def reference_nms_locality(boxes, thres):
    runs = []
    current = None
    for box in np.asarray(boxes, float):
        if current is not None and reference_iou(box, current) > thres:
            quad = reference_vertex_order(current[:8].reshape(4, 2), box[:8].reshape(4, 2)).ravel()
            score = current[8] + box[8]
            current = np.append((current[:8] * current[8] + quad * box[8]) / score, score)
        else:
            if current is not None:
                runs.append(current)
            current = box.copy()
    if current is not None:
        runs.append(current)
    return reference_standard_nms(np.array(runs).reshape(-1, 9), thres)


def reference_standard_nms(boxes, thres):
    order = list(np.argsort(-boxes[:, 8], kind="stable"))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [other for other in order if reference_iou(boxes[best], boxes[other]) <= thres]
    return boxes[keep].reshape(-1, 9)


# --------------------------------------------------------------------------- #
# inputs
# --------------------------------------------------------------------------- #
def rectangle(center, width, height, angle):
    u = np.array([np.cos(angle), -np.sin(angle)])
    v = np.array([np.sin(angle), np.cos(angle)])
    center = np.asarray(center, float)
    return np.array([center - width / 2 * u - height / 2 * v, center + width / 2 * u - height / 2 * v,
                     center + width / 2 * u + height / 2 * v, center - width / 2 * u + height / 2 * v])


def random_detections(seed, texts=12, per_text=(1, 40), jitter=1.5):
    """Row-ordered-like detections: jittered copies of a few texts, runs interleaved."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(texts):
        center = rng.uniform(0, 400, 2)
        base = rectangle(center, rng.uniform(20, 150), rng.uniform(8, 40), rng.uniform(-np.pi / 4, np.pi / 4))
        copies = rng.integers(*per_text)
        quads = base[None] + rng.normal(0, jitter, (copies, 4, 2))
        scores = rng.uniform(0.5, 1.0, (copies, 1))
        cuts = np.sort(rng.integers(0, copies + 1, rng.integers(0, 3)))
        runs.extend(np.split(np.concatenate([quads.reshape(-1, 8), scores], 1), cuts))
    rng.shuffle(runs)
    return np.concatenate([run for run in runs if len(run)]).astype(np.float32)


def assert_same_boxes(actual, expected, atol):
    assert actual.shape == expected.shape
    # lanms does not promise an order among equal scores; compare sorted by score
    actual = actual[np.argsort(-actual[:, 8], kind="stable")]
    expected = expected[np.argsort(-expected[:, 8], kind="stable")]
    np.testing.assert_allclose(actual[:, :8], expected[:, :8], atol=atol)
    np.testing.assert_allclose(actual[:, 8], expected[:, 8], rtol=1e-4)


# --------------------------------------------------------------------------- #
# tests
# --------------------------------------------------------------------------- #
def test_quad_iou_matches_shapely():
    rng = np.random.default_rng(0)
    first = np.stack([rectangle(rng.uniform(0, 60, 2), *rng.uniform(2, 50, 2), rng.uniform(-3, 3)) for _ in range(300)])
    second = np.stack([rectangle(rng.uniform(0, 60, 2), *rng.uniform(2, 50, 2), rng.uniform(-3, 3)) for _ in range(300)])
    second[:50] = first[:50]  # identical pairs: shared edges
    second[50:60] = first[50:60, ::-1]  # opposite orientation
    expected = [reference_iou(a.ravel(), b.ravel()) for a, b in zip(first, second)]
    np.testing.assert_allclose(quad_iou(first, second), expected, atol=1e-9)


@pytest.mark.parametrize("backend", ["python", pytest.param("lanms", marks=needs_lanms)])
def test_duplicates_merge_and_separate_boxes_survive(backend):
    box = np.append(rectangle((50, 50), 60, 20, 0.1).ravel(), 0.9)
    other = np.append(rectangle((200, 80), 40, 30, -0.3).ravel(), 0.8)
    boxes = np.stack([box, box, box, other, other]).astype(np.float32)
    result = nms_locality(boxes, 0.2, backend=backend)
    assert result.shape == (2, 9)
    result = result[np.argsort(-result[:, 8])]
    np.testing.assert_allclose(result[0], np.append(box[:8], 2.7), atol=1e-3)
    np.testing.assert_allclose(result[1], np.append(other[:8], 1.6), atol=1e-3)


def test_merge_is_score_weighted_and_suppression_keeps_the_best():
    low = np.append(rectangle((50, 50), 60, 20, 0).ravel(), 1.0)
    high = low.copy()
    high[:8] += 2.0
    high[8] = 3.0
    result = nms_locality(np.stack([low, high]).astype(np.float32), 0.2, backend="python")
    np.testing.assert_allclose(result[0, :8], low[:8] + 1.5, atol=1e-4)  # (1*0 + 3*2) / 4
    # not consecutive -> not merged; standard NMS keeps the best-scoring one
    far = np.append(rectangle((300, 300), 10, 10, 0).ravel(), 0.5)
    result = nms_locality(np.stack([low, far, high]).astype(np.float32), 0.2, backend="python")
    assert len(result) == 2
    np.testing.assert_allclose(result[0], high, atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_python_backend_equals_plain_reference(seed):
    boxes = random_detections(seed)
    expected = reference_nms_locality(boxes, 0.2)
    actual = nms_locality(boxes, 0.2, backend="python")
    assert_same_boxes(actual, expected, atol=1e-3)
    assert len(actual) < len(boxes)


@needs_lanms
@pytest.mark.parametrize("seed", range(6))
def test_lanms_and_python_backends_agree(seed):
    boxes = random_detections(seed + 100)
    assert_same_boxes(
        nms_locality(boxes, 0.2, backend="python"), nms_locality(boxes, 0.2, backend="lanms"), atol=0.02
    )


def test_standard_nms_equals_reference():
    boxes = random_detections(7)
    assert_same_boxes(standard_nms(boxes, 0.2), reference_standard_nms(boxes.astype(float), 0.2), atol=1e-4)


@pytest.mark.parametrize("backend", ["auto", "python", pytest.param("lanms", marks=needs_lanms)])
def test_empty_input_gives_empty_output(backend):
    assert nms_locality(np.zeros((0, 9), np.float32), 0.2, backend=backend).shape == (0, 9)
    assert nms_locality(np.array([]), 0.2, backend=backend).shape == (0, 9)
    assert standard_nms(np.zeros((0, 9)), 0.2).shape == (0, 9)


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="boxes"):
        nms_locality(np.zeros((3, 8)), 0.2)
    with pytest.raises(ValueError, match="backend"):
        nms_locality(np.zeros((0, 9)), 0.2, backend="cuda")
    with pytest.raises(ValueError, match="nms_thres"):
        nms_locality(np.zeros((1, 9)), nms_thres=2.0)


def test_lanms_backend_without_the_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(locality_aware_nms, "_lanms", None)
    with pytest.raises(ValueError, match="lanms-contrib"):
        nms_locality(np.zeros((1, 9)), 0.2, backend="lanms")
    # auto needs no wheel
    box = np.append(rectangle((50, 50), 60, 20, 0).ravel(), 0.9).astype(np.float32)
    assert nms_locality(np.stack([box, box]), 0.2, backend="auto").shape == (1, 9)
