"""Quad utilities, RBOX label maps and decoding (numpy only, no TensorFlow)."""
import numpy as np
import pytest
import shapely

import geometry
import locality_aware_nms
from geometry import (
    OUTPUT_STRIDE,
    clip_quads,
    decode_rbox,
    make_rbox_targets,
    min_area_rectangles,
    order_clockwise_from_top_left,
    polygon_signed_area,
    quad_problem,
    rbox_to_quads,
    shrink_quads,
)
from postprocess import boxes_to_original, detect_boxes, normalize_image, resize_for_inference

IMAGE_HW = (512, 512)


def rotated_rectangle(center, width, height, angle_deg):
    """Corners of a width x height rectangle turned by angle_deg (clockwise on screen)."""
    angle = np.deg2rad(angle_deg)
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-np.sin(angle), np.cos(angle)])
    center = np.asarray(center, float)
    return np.array(
        [
            center - width / 2 * u - height / 2 * v,
            center + width / 2 * u - height / 2 * v,
            center + width / 2 * u + height / 2 * v,
            center - width / 2 * u + height / 2 * v,
        ]
    )


def iou(quad_a, quad_b):
    a, b = shapely.Polygon(quad_a), shapely.Polygon(quad_b)
    inter = a.intersection(b).area
    return inter / (a.area + b.area - inter)


# --------------------------------------------------------------------------- #
# quad utilities
# --------------------------------------------------------------------------- #
def test_signed_area_is_positive_clockwise_on_screen():
    quad = np.array([[0, 0], [10, 0], [10, 5], [0, 5]], np.float32)
    assert polygon_signed_area(quad) == pytest.approx(50.0)
    assert polygon_signed_area(quad[::-1]) == pytest.approx(-50.0)
    np.testing.assert_allclose(polygon_signed_area(np.stack([quad, quad[::-1]])), [50.0, -50.0])
    assert polygon_signed_area(np.zeros((0, 4, 2))).shape == (0,)


def test_order_clockwise_from_top_left():
    expected = np.array([[10, 10], [90, 10], [90, 50], [10, 50]], np.float32)
    counter_clockwise = expected[[2, 1, 0, 3]]
    rotated = expected[[2, 3, 0, 1]]
    ordered = order_clockwise_from_top_left(np.stack([counter_clockwise, rotated]))
    np.testing.assert_array_equal(ordered, np.stack([expected, expected]))
    assert ordered.dtype == np.float32
    np.testing.assert_array_equal(order_clockwise_from_top_left(expected[[3, 0, 1, 2]]), expected)
    assert order_clockwise_from_top_left(np.zeros((0, 4, 2))).shape == (0, 4, 2)


@pytest.mark.parametrize(
    "quad, image_hw, reason",
    [
        ([[0, 0], [10, 0], [10, 10], [0, 10]], (20, 20), None),
        ([[0, 0], [10, 0], [10, np.nan], [0, 10]], None, "non-finite coordinates"),
        ([[0, 0], [10, 10], [10, 0], [0, 10]], None, "self-intersecting"),
        ([[0, 0], [10, 0], [10, 0.05], [0, 0.05]], None, "degenerate (area < 1 px²)"),
        ([[0, 0], [5, 5], [10, 10], [3, 3]], None, "degenerate (area < 1 px²)"),
        ([[30, 30], [40, 30], [40, 40], [30, 40]], (20, 20), "outside the image"),
        ([[15, 15], [40, 15], [40, 40], [15, 40]], (20, 20), None),
    ],
)
def test_quad_problem_reasons(quad, image_hw, reason):
    assert quad_problem(np.array(quad, float), image_hw) == reason


def test_clip_quads_to_image():
    quad = np.array([[-5, -3], [700, 2], [700, 600], [3, 600]], np.float32)
    clipped = clip_quads(quad, (480, 640))
    np.testing.assert_array_equal(clipped, [[0, 0], [639, 2], [639, 479], [3, 479]])
    assert clip_quads(np.zeros((0, 4, 2)), (480, 640)).shape == (0, 4, 2)


def test_text_heights_are_the_shorter_pair_of_edges_whatever_the_turn():
    plate = np.array([[0, 0], [40, 0], [40, 10], [0, 10]], np.float64)
    assert geometry.text_heights(plate) == 10.0
    standing = plate[:, ::-1]  # the same box 10 px wide and 40 px tall, corners counter-clockwise
    turn = np.deg2rad(30.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    trapezoid = np.array([[0, 0], [60, 0], [50, 12], [10, 8]], np.float64)  # edges 60, 15.6, 40, 12.8
    np.testing.assert_allclose(geometry.text_heights(np.stack([plate @ rotation.T + 7, standing, trapezoid])),
                               [10.0, 10.0, (np.hypot(10, 12) + np.hypot(10, 8)) / 2])


def test_shrink_axis_aligned_rectangle_by_hand():
    # 100 x 20: every corner's shorter edge is 20, so each edge moves in by 0.3 * 20 = 6 px
    quad = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], np.float32)
    np.testing.assert_allclose(shrink_quads(quad), [[6, 6], [94, 6], [94, 14], [6, 14]], atol=1e-4)
    np.testing.assert_allclose(shrink_quads(quad, ratio=0.1), [[2, 2], [98, 2], [98, 18], [2, 18]], atol=1e-4)


def test_thin_text_keeps_a_band_one_map_pixel_thick():
    # 40 x 6 px at y 3..9: the paper's shrink (0.3 * 6 = 1.8 px) leaves y 4.8..7.2, between the map's
    # sample rows y = 4 and 8, so the plate would have no positive pixel and its inside would be masked
    # as the ring. Shrunk by (6 - 4) / 12 instead, 1 px per edge, it keeps y 4..8: rows 1 and 2.
    thin = np.array([[20, 3], [60, 3], [60, 9], [20, 9]], np.float32)
    normal = np.array([[100, 100], [200, 100], [200, 120], [100, 120]], np.float32)
    np.testing.assert_allclose(geometry.thin_text_shrink_ratios(np.stack([thin, normal])), [1 / 6, 0.3])
    np.testing.assert_allclose(geometry.thin_text_shrink_ratios(np.array([[0, 0], [9, 0], [9, 3], [0, 3]])), [0.0])
    score_map, geo_map, training_mask = make_rbox_targets(thin[None], [False], (128, 128), min_text_size=5)
    rows, cols = np.nonzero(score_map[..., 0])
    assert set(rows) == {1, 2} and (cols.min(), cols.max()) == (6, 14)  # x 24..56 inside 21..59
    assert np.all(training_mask[rows, cols, 0] == 1)
    # pixel (row 1, col 6) is the input point (24, 4): 1 px below the top, 5 above the bottom, 4 and 36 from the sides
    np.testing.assert_allclose(geo_map[1, 6], [1, 36, 5, 4, 0], atol=1e-5)
    # text at least 10 px thick keeps the paper's shrink exactly
    np.testing.assert_allclose(shrink_quads(normal, geometry.thin_text_shrink_ratios(normal[None])),
                               shrink_quads(normal), atol=1e-6)


def test_min_area_rectangle_of_a_perspective_quad_contains_it():
    rng = np.random.default_rng(3)
    quads = np.stack([rotated_rectangle((200, 200), 120, 40, a) for a in rng.uniform(-90, 90, 20)])
    quads = quads + rng.uniform(-8, 8, quads.shape)
    rectangles = min_area_rectangles(quads)
    for quad, rectangle in zip(quads, rectangles):
        hull = shapely.Polygon(quad).convex_hull
        assert shapely.Polygon(rectangle).buffer(1e-3).contains(hull)
        # no other direction gives a smaller box
        for angle in np.linspace(0, np.pi / 2, 91):
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            turned = quad @ rotation
            extent = turned.max(0) - turned.min(0)
            assert shapely.Polygon(rectangle).area <= extent[0] * extent[1] + 1e-3


# --------------------------------------------------------------------------- #
# label maps and decoding
# --------------------------------------------------------------------------- #
def test_axis_aligned_targets_by_hand():
    quad = np.array([[[8, 8], [88, 8], [88, 48], [8, 48]]], np.float32)
    score_map, geo_map, training_mask = make_rbox_targets(quad, [False], (64, 128))
    assert score_map.shape == (16, 32, 1) and geo_map.shape == (16, 32, 5) and training_mask.shape == (16, 32, 1)
    # shrunk by 0.3 * 40 = 12: x in [20, 76], y in [20, 36] -> map cols 5..19, rows 5..9
    expected = np.zeros((16, 32), np.float32)
    expected[5:10, 5:20] = 1
    np.testing.assert_array_equal(score_map[..., 0], expected)
    # pixel (row 6, col 10) is the input point (40, 24)
    np.testing.assert_allclose(geo_map[6, 10], [24 - 8, 88 - 40, 48 - 24, 40 - 8, 0.0])
    assert np.all(geo_map[score_map[..., 0] == 0] == 0)
    # ring between the quad and its shrunk version is masked, the rest is 1
    assert training_mask[3, 3, 0] == 0 and training_mask[7, 12, 0] == 1 and training_mask[0, 0, 0] == 1


@pytest.mark.parametrize(
    "angle_deg, expected_angle, width_along_ex",
    [(0, 0.0, 160), (45, np.pi / 4, 40), (-45, np.pi / 4, 160), (90, 0.0, 40)],
)
def test_exact_angles(angle_deg, expected_angle, width_along_ex):
    quad = order_clockwise_from_top_left(rotated_rectangle((256, 256), 160, 40, angle_deg))
    score_map, geo_map, _ = make_rbox_targets(quad[None], [False], IMAGE_HW)
    positive = score_map[..., 0] > 0
    assert positive.sum() > 10
    np.testing.assert_allclose(geo_map[positive][:, 4], expected_angle, atol=1e-6)
    # left + right is the rectangle's extent along ex
    np.testing.assert_allclose(geo_map[positive][:, 1] + geo_map[positive][:, 3], width_along_ex, atol=1e-3)
    boxes = decode_rbox(score_map, geo_map, 0.8)
    assert len(boxes) == positive.sum(), "one decoded box per positive pixel"
    for box in boxes:
        assert iou(box[:8].reshape(4, 2), quad) > 0.999
    if expected_angle == 0:
        # axis-aligned: p0 is the top-left corner
        np.testing.assert_allclose(boxes[0, :2], quad.min(axis=0), atol=1e-3)


def test_rbox_round_trip_by_hand():
    origins = np.array([[50.0, 40.0]])
    geometry_row = np.array([[10.0, 20.0, 5.0, 30.0, 0.0]])
    np.testing.assert_allclose(rbox_to_quads(origins, geometry_row)[0], [[20, 30], [70, 30], [70, 45], [20, 45]])
    # the same box turned by +30 deg about the origin pixel
    angle = np.pi / 6
    corners = rbox_to_quads(origins, np.array([[10.0, 20.0, 5.0, 30.0, angle]]))[0]
    ex = np.array([np.cos(angle), -np.sin(angle)])
    np.testing.assert_allclose(corners[1] - corners[0], 50 * ex, atol=1e-4)
    assert polygon_signed_area(corners) == pytest.approx(50 * 15, rel=1e-5)


def test_dont_care_and_small_text_are_masked_out():
    normal = rotated_rectangle((120, 120), 150, 40, 10)
    dont_care = rotated_rectangle((350, 120), 150, 40, -20)
    tiny = rotated_rectangle((256, 400), 80, 8, 0)  # shorter side 8 < min_text_size 10
    quads = np.stack([normal, dont_care, tiny])
    score_map, _, training_mask = make_rbox_targets(quads, [False, True, False], IMAGE_HW, min_text_size=10)

    def map_pixels_inside(quad):
        rows, cols = np.mgrid[0 : IMAGE_HW[0] // OUTPUT_STRIDE, 0 : IMAGE_HW[1] // OUTPUT_STRIDE]
        points = shapely.points(cols.ravel() * OUTPUT_STRIDE, rows.ravel() * OUTPUT_STRIDE)
        return shapely.contains(shapely.Polygon(quad), points).reshape(rows.shape)

    mask = training_mask[..., 0]
    for quad in (dont_care, tiny):
        inside = map_pixels_inside(quad)
        assert inside.sum() > 5
        assert np.all(mask[inside] == 0)
    inside_normal_shrunk = map_pixels_inside(shrink_quads(normal))
    assert np.all(mask[inside_normal_shrunk] == 1)
    assert np.all(score_map[..., 0][inside_normal_shrunk] == 1)
    ring = map_pixels_inside(normal) & ~map_pixels_inside(shrink_quads(normal).astype(float) + 0)
    ring &= score_map[..., 0] == 0
    assert ring.sum() > 5 and np.all(mask[ring] == 0)
    outside = ~map_pixels_inside(normal) & ~map_pixels_inside(dont_care) & ~map_pixels_inside(tiny)
    assert mask[outside].mean() > 0.99
    # without flags both quads count again
    _, _, plain_mask = make_rbox_targets(quads[:2], [False, False], IMAGE_HW)
    assert np.all(plain_mask[..., 0][map_pixels_inside(shrink_quads(dont_care))] == 1)


def test_later_quads_overwrite_earlier_ones():
    first = rotated_rectangle((200, 200), 200, 60, 0)
    second = rotated_rectangle((200, 200), 200, 60, 90)
    score_map, geo_map, _ = make_rbox_targets(np.stack([first, second]), [False, False], IMAGE_HW)
    centre = (200 // OUTPUT_STRIDE, 200 // OUTPUT_STRIDE)
    # the second quad is 60 wide along x: left + right = 60 at the centre
    assert geo_map[centre][1] + geo_map[centre][3] == pytest.approx(60, abs=1e-3)


def _random_scene(rng, count, perspective):
    """Up to `count` quads in a 512 x 512 image whose min-area rectangles do not touch."""
    quads, rectangles = [], []
    attempts = 0
    while len(quads) < count and attempts < 2000:
        attempts += 1
        width = rng.uniform(10, 400)
        height = rng.uniform(10, min(width, 120))
        quad = rotated_rectangle((0, 0), width, height, rng.uniform(-90, 90))
        if perspective:
            quad = quad + rng.uniform(-0.15, 0.15, (4, 2)) * height
        span = quad.max(0) - quad.min(0)
        if np.any(span > 511):
            continue
        low = rng.uniform(0, 511 - span)
        border = rng.integers(0, 5)  # 1..4: push against one image border
        if border == 1:
            low[0] = 0
        elif border == 2:
            low[1] = 0
        elif border == 3:
            low[0] = 511 - span[0]
        elif border == 4:
            low[1] = 511 - span[1]
        quad = quad - quad.min(0) + low
        quad = order_clockwise_from_top_left(quad).astype(np.float64)
        rectangle = shapely.Polygon(min_area_rectangles(quad))
        if any(rectangle.distance(other) < 8 for other in rectangles):
            continue
        quads.append(quad)
        rectangles.append(rectangle)
    return np.array(quads)


@pytest.mark.parametrize(
    "backend",
    ["python", pytest.param("lanms", marks=pytest.mark.skipif(not locality_aware_nms.LANMS_AVAILABLE, reason="no lanms"))],
)
def test_round_trip_maps_decode_nms(backend):
    """200 rotated rectangles and 200 perspective quads -> maps -> decode -> NMS -> the same boxes."""
    rng = np.random.default_rng(20240601)
    for perspective, min_iou in ((False, 0.98), (True, 0.9)):
        recovered, total = 0, 0
        while total < 200:
            quads = _random_scene(rng, min(rng.integers(1, 9), 200 - total), perspective)
            total += len(quads)
            score_map, geo_map, _ = make_rbox_targets(quads, np.zeros(len(quads), bool), IMAGE_HW)
            boxes = locality_aware_nms.nms_locality(decode_rbox(score_map, geo_map, 0.8), 0.2, backend=backend)
            owners = _pixel_owners(quads, score_map)
            targets = min_area_rectangles(quads)
            assert len(boxes) == len(owners), "one box per text that has positive pixels"
            for index in owners:
                best = max(iou(box[:8].reshape(4, 2), targets[index]) for box in boxes)
                assert best >= min_iou, (perspective, quads[index], best)
                recovered += 1
            for index in set(range(len(quads))) - owners:
                # only text too thin to hold a map pixel after shrinking can vanish
                assert geometry._edge_lengths(quads[index : index + 1]).min() < 16
        assert recovered >= 0.9 * total


def _pixel_owners(quads, score_map):
    rows, cols = np.nonzero(score_map[..., 0] > 0)
    points = shapely.points(cols * OUTPUT_STRIDE, rows * OUTPUT_STRIDE)
    owners = set()
    for index, quad in enumerate(quads):
        if shapely.intersects(shapely.Polygon(quad), points).any():
            owners.add(index)
    return owners


# --------------------------------------------------------------------------- #
# empty inputs and bad shapes
# --------------------------------------------------------------------------- #
def test_empty_inputs_give_empty_outputs():
    score_map, geo_map, training_mask = make_rbox_targets(np.zeros((0, 4, 2)), np.zeros(0, bool), (32, 64))
    assert score_map.shape == (8, 16, 1) and geo_map.shape == (8, 16, 5) and training_mask.shape == (8, 16, 1)
    assert score_map.sum() == 0 and geo_map.sum() == 0 and np.all(training_mask == 1)
    assert decode_rbox(score_map, geo_map, 0.8).shape == (0, 9)
    assert rbox_to_quads(np.zeros((0, 2)), np.zeros((0, 5))).shape == (0, 4, 2)
    assert shrink_quads(np.zeros((0, 4, 2))).shape == (0, 4, 2)
    assert detect_boxes(score_map, geo_map).shape == (0, 9)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: make_rbox_targets(np.zeros((2, 3, 2)), [False, False], (32, 32)), "quads"),
        (lambda: make_rbox_targets(np.zeros((2, 4, 2)), [False], (32, 32)), "dont_care"),
        (lambda: make_rbox_targets(np.zeros((0, 4, 2)), [], (30, 32)), "image_hw"),
        (lambda: decode_rbox(np.zeros((8, 8)), np.zeros((8, 8, 4)), 0.8), "geo_map"),
        (lambda: decode_rbox(np.zeros((2, 8, 8)), np.zeros((8, 8, 5)), 0.8), "score_map"),
        (lambda: rbox_to_quads(np.zeros((3, 2)), np.zeros((2, 5))), "geometry"),
        (lambda: polygon_signed_area(np.zeros((4, 3))), "quads"),
        (lambda: quad_problem(np.zeros((3, 2))), "quad"),
        (lambda: clip_quads(np.zeros((1, 4, 2)), (0, 10)), "image_hw"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_detect_boxes_scores_by_mean_and_drops_weak_boxes():
    quads = np.stack([rotated_rectangle((120, 100), 160, 48, 0), rotated_rectangle((350, 300), 160, 48, 30)])
    score_map, geo_map, _ = make_rbox_targets(quads, [False, False], IMAGE_HW)
    boxes = detect_boxes(score_map, geo_map)
    assert boxes.shape == (2, 9)
    # mean over the whole box of a map that is 1 only on the shrunk part
    assert np.all((boxes[:, 8] > 0.1) & (boxes[:, 8] < 0.9))
    assert detect_boxes(score_map, geo_map, box_thresh=0.95).shape == (0, 9)
    original = boxes_to_original(boxes, 0.5, 0.25)
    expected = order_clockwise_from_top_left(min_area_rectangles(quads) / np.array([0.25, 0.5]))
    for quad in expected:
        assert max(iou(quad, found) for found in original) > 0.98


def test_core_thresh_scores_the_shrunk_box_whatever_its_aspect():
    """A perfect map scores 1 over each box's core, so core_thresh keeps a square and a 5:1 box alike, where
    the mean over the whole box (box_thresh) differs from box to box; a box whose core is half empty goes."""
    quads = np.stack([rotated_rectangle((100, 100), 64, 64, 0), rotated_rectangle((300, 100), 160, 32, 0),
                      rotated_rectangle((250, 350), 160, 80, 20)])
    score_map, geo_map, _ = make_rbox_targets(quads, [False] * 3, IMAGE_HW)
    boxes = detect_boxes(score_map, geo_map)
    assert len(boxes) == 3 and boxes[:, 8].max() - boxes[:, 8].min() > 0.1 and boxes[:, 8].max() < 0.3
    np.testing.assert_allclose(geometry.core_mean_scores(score_map[..., 0], boxes[:, :8].reshape(-1, 4, 2)), 1.0)
    assert len(detect_boxes(score_map, geo_map, core_thresh=0.99)) == 3
    half = score_map.copy()
    half[:, 300 // 4:] = 0  # the 5:1 box keeps the left half of its core, the others are untouched
    kept = detect_boxes(half, geo_map)
    assert len(kept) == 3 and len(detect_boxes(half, geo_map, core_thresh=0.6)) == 2
    survivors = detect_boxes(half, geo_map, core_thresh=0.6)[:, :8].reshape(-1, 4, 2).mean(axis=1)
    assert not np.any(np.linalg.norm(survivors - [300, 100], axis=1) < 40)


def test_resize_for_inference_and_normalize():
    image = np.full((37, 1000, 3), 255, np.uint8)
    resized, (ratio_h, ratio_w) = resize_for_inference(image, max_side_len=640)
    assert resized.shape == (32, 640, 3)  # 37 * 0.64 = 23 -> never below 32
    assert (ratio_h, ratio_w) == pytest.approx((32 / 37, 0.64))
    normalized = normalize_image(resized)
    assert normalized.dtype == np.float32 and normalized.max() == 1.0
    assert normalize_image(np.zeros((2, 2, 3), np.uint8)).min() == -1.0
    with pytest.raises(ValueError, match="image_rgb"):
        resize_for_inference(np.zeros((10, 10)))


def test_shoelace_areas_is_the_one_area_for_any_polygon_shape():
    square = np.array([[0, 0], [4, 0], [4, 3], [0, 3]], np.float64)  # clockwise on screen, 12 px²
    padded = np.concatenate([square, square[-1:], square[-1:]])  # clipped polygons pad with the last vertex
    np.testing.assert_allclose(geometry.shoelace_areas(np.stack([square[None], square[None, ::-1]])), [[12], [-12]])
    assert geometry.shoelace_areas(padded) == 12.0
    assert geometry.polygon_signed_area(square) == 12.0
