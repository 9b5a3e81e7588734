"""Quad utilities and EAST RBOX targets, in numpy (no TensorFlow).

Conventions shared by the whole project:

* A quad is float32 ``(4, 2)``: pixel ``(x, y)`` with y pointing down, corners
  clockwise on screen, starting at the top-left corner (the corner with the
  smallest ``x + y`` once the order is clockwise). Arrays of quads are
  ``(N, 4, 2)``; "no quads" is ``(0, 4, 2)``.
* Score/geo maps have ``1 / OUTPUT_STRIDE`` of the input resolution. Map pixel
  ``(row r, col c)`` stands for the input point ``(x, y) = (4c, 4r)``
  (EAST-tf2 builds full-size maps and keeps ``[::4, ::4]``; we build the small
  maps directly and sample the same points).

RBOX geometry (EAST-tf2's convention, written down once here). For a text quad
take its minimum-area rotated rectangle and name its corners ``p0..p3``
clockwise so that the edge ``p0 -> p1`` has direction
``ex = (cos a, -sin a)`` with the angle ``a`` in ``(-pi/4, pi/4]`` (an
axis-aligned rectangle gets ``a = 0`` and ``p0`` top-left); ``ey = (sin a,
cos a)`` is the direction ``p1 -> p2``. For a pixel whose input point is ``o``
the five geo channels are::

    0 top    = (o - p0) . ey        distance to edge p0-p1
    1 right  = (p1 - o) . ex        distance to edge p1-p2
    2 bottom = (p3 - o) . ey        distance to edge p2-p3
    3 left   = (o - p0) . ex        distance to edge p3-p0
    4 angle  = a                    radians

and decoding inverts it: ``p0 = o - left*ex - top*ey``, ``p1 = o + right*ex -
top*ey``, ``p2 = o + right*ex + bottom*ey``, ``p3 = o - left*ex + bottom*ey``
(the same rectangles as EAST-tf2's ``restore_rectangle_rbox``).
"""
from __future__ import annotations

import logging

import numpy as np

import network_io

log = logging.getLogger(__name__)

OUTPUT_STRIDE = network_io.OUTPUT_STRIDE  # re-exported: callers of make_rbox_targets size maps with it
SHRINK_RATIO = 0.3
# A shrunk quad is kept at least this thick (px), one map-pixel spacing, so that text at least this
# thick keeps a positive map pixel (see make_rbox_targets); the paper's shrink leaves text under
# 10 px with a band under 4 px that often falls between the map's sample rows.
MIN_SHRUNK_SIDE = float(OUTPUT_STRIDE)
MIN_QUAD_AREA = 1.0  # px²; smaller quads are "degenerate"

_QUARTER_PI = np.pi / 4
_HALF_PI = np.pi / 2
# Rectangles within this many radians of +-45 deg get angle +pi/4, so that exact
# diagonal boxes do not flip between +pi/4 and -pi/4 on rounding noise.
_ANGLE_SNAP = 1e-7
_INSIDE_EPS = 1e-6  # px², tolerance of the point-on-edge test


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _as_quads(quads, name: str = "quads") -> tuple[np.ndarray, bool]:
    """Returns (float64 (N, 4, 2) array, whether the input was a single (4, 2) quad)."""
    array = np.asarray(quads)
    if array.ndim == 2 and array.shape == (4, 2):
        return array.astype(np.float64)[None], True
    if array.ndim == 3 and array.shape[1:] == (4, 2):
        return array.astype(np.float64), False
    if array.size == 0 and array.ndim >= 1:
        # [] or (0,) from a file with no boxes: treat as "no quads".
        return np.zeros((0, 4, 2), np.float64), False
    raise ValueError(f"{name} must be (N, 4, 2) or (4, 2) pixel xy, got shape {array.shape}")


def _as_image_hw(image_hw, name: str = "image_hw") -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_hw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {image_hw!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be positive (height, width), got {image_hw!r}")
    return height, width


def _single_or_batch(array: np.ndarray, single: bool) -> np.ndarray:
    return array[0] if single else array


# --------------------------------------------------------------------------- #
# quad utilities
# --------------------------------------------------------------------------- #
def shoelace_areas(points: np.ndarray) -> np.ndarray:
    """Signed shoelace areas of polygons, the project's one implementation.

    Args:
      points: float (..., K, 2) pixel xy, y down (repeated vertices are harmless, so clipped
        polygons may be padded with their last vertex).

    Returns:
      float64 (...,) areas in px², positive when the corners run clockwise on screen.
    """
    points = np.asarray(points, dtype=np.float64)
    x, y = points[..., 0], points[..., 1]
    return 0.5 * np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1)


def polygon_signed_area(quads) -> np.ndarray | float:
    """Shoelace area of quads; positive when the corners run clockwise on screen.

    Args:
      quads: (N, 4, 2) or (4, 2) pixel xy, y down.

    Returns:
      float64 (N,) areas in px², or a float for a single (4, 2) quad. Empty -> (0,).
    """
    array, single = _as_quads(quads)
    area = shoelace_areas(array)
    return float(area[0]) if single else area


def order_clockwise_from_top_left(quads) -> np.ndarray:
    """Puts each quad's corners clockwise on screen, starting at the top-left corner.

    The project's one corner-order normalization (DESIGN.md): loaders, synthetic data and
    output writers call this rather than ordering corners themselves.

    Counter-clockwise quads are reversed; then the corners are rotated so the
    first is the one with the smallest ``x + y`` (ties: the smaller ``x``).

    Args:
      quads: (N, 4, 2) or (4, 2) pixel xy.

    Returns:
      float32 array of the input's shape. Empty -> (0, 4, 2).
    """
    array, single = _as_quads(quads)
    counter_clockwise = polygon_signed_area(array) < 0
    array = np.where(counter_clockwise[:, None, None], array[:, [0, 3, 2, 1]], array)
    coord_sum = array.sum(axis=-1)
    # sort key (x + y, x): exact ties of x + y go to the leftmost corner
    start = np.lexsort((array[..., 0], coord_sum), axis=-1)[:, 0]
    rolled = (start[:, None] + np.arange(4)[None]) % 4
    ordered = np.take_along_axis(array, rolled[..., None], axis=1)
    return _single_or_batch(ordered.astype(np.float32), single)


def _segments_cross(a0, a1, b0, b1) -> np.ndarray:
    """Whether segments a0-a1 and b0-b1 properly cross (touching does not count)."""

    def orient(p, q, r):
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            r[..., 0] - p[..., 0]
        )

    d1, d2 = orient(a0, a1, b0), orient(a0, a1, b1)
    d3, d4 = orient(b0, b1, a0), orient(b0, b1, a1)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def quad_problem(quad, image_hw: tuple[int, int] | None = None) -> str | None:
    """Why a quad is unusable as a text box, or None when it is fine.

    Args:
      quad: (4, 2) pixel xy, any corner order.
      image_hw: optional (height, width); a quad whose bounding box lies
        entirely outside ``[0, width] x [0, height]`` is "outside the image".

    Returns:
      None, or one of "non-finite coordinates", "self-intersecting",
      "degenerate (area < 1 px²)", "outside the image" (checked in that order).
    """
    array = np.asarray(quad, dtype=np.float64)
    if array.shape != (4, 2):
        raise ValueError(f"quad must be (4, 2) pixel xy, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        return "non-finite coordinates"
    if _segments_cross(array[0], array[1], array[2], array[3]) or _segments_cross(
        array[1], array[2], array[3], array[0]
    ):
        return "self-intersecting"
    if abs(polygon_signed_area(array)) < MIN_QUAD_AREA:
        return "degenerate (area < 1 px²)"
    if image_hw is not None:
        height, width = _as_image_hw(image_hw)
        x, y = array[:, 0], array[:, 1]
        if x.max() < 0 or y.max() < 0 or x.min() > width or y.min() > height:
            return "outside the image"
    return None


def clip_quads(quads, image_hw) -> np.ndarray:
    """Clips corner coordinates to the image, x to [0, W-1] and y to [0, H-1] (EAST-tf2).

    Args:
      quads: (N, 4, 2) or (4, 2) pixel xy.
      image_hw: (height, width) of the image.

    Returns:
      float32 array of the input's shape. Empty -> (0, 4, 2).
    """
    array, single = _as_quads(quads)
    height, width = _as_image_hw(image_hw)
    clipped = np.empty_like(array)
    clipped[..., 0] = np.clip(array[..., 0], 0, width - 1)
    clipped[..., 1] = np.clip(array[..., 1], 0, height - 1)
    return _single_or_batch(clipped.astype(np.float32), single)


def _edge_lengths(quads: np.ndarray) -> np.ndarray:
    """(N, 4) lengths of edges p_i -> p_(i+1)."""
    return np.linalg.norm(np.roll(quads, -1, axis=1) - quads, axis=-1)


def text_heights(quads) -> np.ndarray:
    """Each quad's text height, px: the mean length of its shorter pair of opposite edges, so a
    plate's height whatever its aspect or rotation. quads (N, 4, 2) -> (N,); (4, 2) -> a scalar."""
    array, single = _as_quads(quads)
    edge = _edge_lengths(array)
    return _single_or_batch(np.minimum(edge[:, 0] + edge[:, 2], edge[:, 1] + edge[:, 3]) / 2, single)


def shrink_quads(quads, ratio: float = SHRINK_RATIO) -> np.ndarray:
    """Moves each edge inwards as in the EAST paper (EAST-tf2 ``shrink_poly``).

    Each corner ``i`` has reference length ``r_i``, the shorter of its two
    edges. The longer pair of opposite edges is shrunk first: along edge
    ``(a, b)`` corner ``a`` moves ``ratio * r_a`` towards ``b`` and ``b`` moves
    ``ratio * r_b`` towards ``a``; then the other pair.

    Args:
      quads: (N, 4, 2) or (4, 2) pixel xy, clockwise from top-left.
      ratio: fraction of ``r_i`` each corner moves along each of its edges; a float, or (N,) one per quad.

    Returns:
      float32 array of the input's shape. Empty -> (0, 4, 2).
    """
    array, single = _as_quads(quads)
    points = array.copy()
    edge = _edge_lengths(points)  # edge[i] joins corner i and i+1
    reference = np.minimum(edge, np.roll(edge, 1, axis=1))  # r_i
    move = np.reshape(np.asarray(ratio, np.float64), (-1, 1)) * reference
    long_first = edge[:, 0] + edge[:, 2] > edge[:, 1] + edge[:, 3]
    pairs_long_first = ((0, 1), (3, 2), (0, 3), (1, 2))
    pairs_short_first = ((0, 3), (1, 2), (0, 1), (3, 2))
    for step in range(4):
        a = np.where(long_first, pairs_long_first[step][0], pairs_short_first[step][0])
        b = np.where(long_first, pairs_long_first[step][1], pairs_short_first[step][1])
        rows = np.arange(len(points))
        point_a, point_b = points[rows, a], points[rows, b]
        delta = point_b - point_a
        length = np.linalg.norm(delta, axis=-1, keepdims=True)
        unit = np.divide(delta, length, out=np.zeros_like(delta), where=length > 0)
        points[rows, a] = point_a + unit * move[rows, a][:, None]
        points[rows, b] = point_b - unit * move[rows, b][:, None]
    return _single_or_batch(points.astype(np.float32), single)


# --------------------------------------------------------------------------- #
# minimum-area rectangles
# --------------------------------------------------------------------------- #
_PAIR_I, _PAIR_J = np.triu_indices(4, k=1)


def thin_text_shrink_ratios(quads, ratio: float = SHRINK_RATIO) -> np.ndarray:
    """(N,) shrink ratio per quad: ``ratio``, lowered for text whose shortest edge ``s`` is under
    ``MIN_SHRUNK_SIDE / (1 - 2 * ratio)`` px (10 px at 0.3) to ``(s - MIN_SHRUNK_SIDE) / (2 s)``, so
    that its shrunk quad stays MIN_SHRUNK_SIDE px thick (0 for text thinner than that)."""
    array, _ = _as_quads(quads)
    return _thin_text_ratios(_edge_lengths(array).min(axis=1), ratio)


def _thin_text_ratios(shortest_edges: np.ndarray, ratio: float) -> np.ndarray:
    """thin_text_shrink_ratios from each quad's shortest edge (N,), px."""
    thin = (shortest_edges - MIN_SHRUNK_SIDE) / np.maximum(2.0 * shortest_edges, 1e-9)
    return np.clip(thin, 0.0, ratio)


def _min_area_rectangles(quads: np.ndarray):
    """Minimum-area rotated rectangle of each quad, in RBOX form.

    The optimal rectangle has a side along an edge of the convex hull, and every
    hull edge joins two of the 4 corners, so trying the directions of all 6
    corner pairs (rotating calipers, brute force) finds it exactly.

    Returns:
      (p0 (N, 2), angle (N,), width (N,) along ex, height (N,) along ey), float64.
    """
    direction = quads[:, _PAIR_J] - quads[:, _PAIR_I]  # (N, 6, 2)
    length = np.linalg.norm(direction, axis=-1)
    u = np.divide(direction, length[..., None], out=np.zeros_like(direction), where=length[..., None] > 0)
    u[length <= 0] = (1.0, 0.0)
    v = np.stack([-u[..., 1], u[..., 0]], axis=-1)
    proj_u = np.einsum("nkd,npd->nkp", u, quads)  # (N, 6, 4)
    proj_v = np.einsum("nkd,npd->nkp", v, quads)
    extent_u = proj_u.max(-1) - proj_u.min(-1)
    extent_v = proj_v.max(-1) - proj_v.min(-1)
    best = np.argmin(extent_u * extent_v, axis=1)
    rows = np.arange(len(quads))
    u_best, v_best = u[rows, best], v[rows, best]
    center = (
        u_best * (0.5 * (proj_u.max(-1) + proj_u.min(-1)))[rows, best, None]
        + v_best * (0.5 * (proj_v.max(-1) + proj_v.min(-1)))[rows, best, None]
    )
    # Of the 4 side directions (+-u, +-v), ex is the one at angle (-pi/4, pi/4].
    alpha = np.arctan2(-u_best[:, 1], u_best[:, 0])
    offset = np.mod(_QUARTER_PI - alpha, _HALF_PI)
    offset = np.where(offset > _HALF_PI - _ANGLE_SNAP, offset - _HALF_PI, offset)
    angle = np.minimum(_QUARTER_PI - offset, _QUARTER_PI)
    ex = np.stack([np.cos(angle), -np.sin(angle)], axis=-1)
    ey = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    along_u = np.abs(np.sum(ex * u_best, axis=-1)) > 0.5
    width = np.where(along_u, extent_u[rows, best], extent_v[rows, best])
    height = np.where(along_u, extent_v[rows, best], extent_u[rows, best])
    p0 = center - 0.5 * width[:, None] * ex - 0.5 * height[:, None] * ey
    return p0, angle, width, height


def min_area_rectangles(quads) -> np.ndarray:
    """Minimum-area rotated rectangle of each quad, corners p0..p3 in RBOX order.

    Args:
      quads: (N, 4, 2) or (4, 2) pixel xy.

    Returns:
      float32 array of the input's shape; ``p0 -> p1`` runs along ``ex`` (see
      the module docstring), so axis-aligned rectangles start top-left.
    """
    array, single = _as_quads(quads)
    p0, angle, width, height = _min_area_rectangles(array)
    ex = np.stack([np.cos(angle), -np.sin(angle)], axis=-1)
    ey = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    dx, dy = width[:, None] * ex, height[:, None] * ey
    corners = np.stack([p0, p0 + dx, p0 + dx + dy, p0 + dy], axis=1)
    return _single_or_batch(corners.astype(np.float32), single)


# --------------------------------------------------------------------------- #
# label maps
# --------------------------------------------------------------------------- #
def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def _points_in_quad(quad: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x, y) lie inside or on a simple quad (convex or not)."""
    # Split along the diagonal that lies inside the quad, test both triangles.
    a, b, c, d = quad
    side_b = _cross(c[0] - a[0], c[1] - a[1], b[0] - a[0], b[1] - a[1])
    side_d = _cross(c[0] - a[0], c[1] - a[1], d[0] - a[0], d[1] - a[1])
    triangles = ((a, b, c), (a, c, d)) if side_b * side_d <= 0 else ((b, c, d), (b, d, a))
    inside = np.zeros(np.broadcast(x, y).shape, bool)
    for p, q, r in triangles:
        orientation = np.sign(_cross(q[0] - p[0], q[1] - p[1], r[0] - p[0], r[1] - p[1])) or 1.0
        in_triangle = np.ones_like(inside)
        for s, t in ((p, q), (q, r), (r, p)):
            in_triangle &= orientation * _cross(t[0] - s[0], t[1] - s[1], x - s[0], y - s[1]) >= -_INSIDE_EPS
        inside |= in_triangle
    return inside


def _rasterize(quad_in_map: np.ndarray, map_hw: tuple[int, int]):
    """Map pixels whose sample point lies in a quad given in map coordinates.

    Returns (row slice, col slice, bool mask of that window), or None if empty.
    """
    low = np.maximum(np.ceil(quad_in_map.min(axis=0) - 1e-9), 0).astype(int)
    high = np.minimum(np.floor(quad_in_map.max(axis=0) + 1e-9), np.array(map_hw[::-1]) - 1).astype(int)
    if np.any(high < low):
        return None
    cols = np.arange(low[0], high[0] + 1, dtype=np.float64)
    rows = np.arange(low[1], high[1] + 1, dtype=np.float64)
    mask = _points_in_quad(quad_in_map, cols[None, :], rows[:, None])
    return slice(low[1], high[1] + 1), slice(low[0], high[0] + 1), mask


def text_cores(quads: np.ndarray, shrink_ratio: float = SHRINK_RATIO) -> np.ndarray:
    """float64 (N, 4, 2) input px: each (N, 4, 2) quad shrunk to the part make_rbox_targets marks as
    text (shrink_quads at thin_text_shrink_ratios)."""
    return shrink_quads(quads, thin_text_shrink_ratios(quads, shrink_ratio)).astype(np.float64)


def core_mean_scores(score_map, quads) -> np.ndarray:
    """Mean score over each quad's core: the map pixels make_rbox_targets marks as its text
    (``text_cores``), so a perfect score map gives 1 whatever the quad's size and aspect.

    Args:
      score_map: (h, w) scores at 1/OUTPUT_STRIDE of the input.
      quads: (N, 4, 2) input px.

    Returns:
      float32 (N,); 0 for a quad whose core holds no map pixel.
    """
    score_map = np.asarray(score_map, np.float32)
    array, _ = _as_quads(quads)
    cores = text_cores(array) / OUTPUT_STRIDE
    means = np.zeros(len(array), np.float32)
    for index, core in enumerate(cores):
        window = _rasterize(core, score_map.shape)
        if window is not None and window[2].any():
            rows, cols, mask = window
            means[index] = score_map[rows, cols][mask].mean()
    return means


def make_rbox_targets(
    quads,
    dont_care,
    image_hw: tuple[int, int],
    *,
    min_text_size: float = 10,
    shrink_ratio: float = SHRINK_RATIO,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Builds EAST's score, RBOX geo and training-mask maps at 1/4 resolution.

    Map pixel ``(r, c)`` is positive when the input point ``(4c, 4r)`` lies in a
    quad shrunk by ``shrink_ratio``; where shrunk quads overlap the later quad
    wins (as in EAST-tf2). Text under 10 px thick is shrunk less, to a band
    MIN_SHRUNK_SIDE px thick (thin_text_shrink_ratios): under the paper's shrink
    it would often cover no map pixel and be neither text nor background to the
    loss (it changes nothing for text at or above EAST-tf2's min_text_size of 10).
    Don't-care and small quads still mark the score map; the training mask hides them.

    Args:
      quads: float (N, 4, 2) pixel xy, clockwise from top-left (N may be 0).
      dont_care: bool (N,), True for "###" text (or None: all False).
      image_hw: (H, W) of the network input, both multiples of OUTPUT_STRIDE.
      min_text_size: quads whose shortest side is below this (px) are masked.
      shrink_ratio: the EAST paper's r (0.3), for text at least 10 px thick.

    Returns:
      score_map float32 (H/4, W/4, 1) in {0, 1};
      geo_map float32 (H/4, W/4, 5): top, right, bottom, left distances in input
        px and angle in radians (module docstring), zero where score is 0;
      training_mask float32 (H/4, W/4, 1): 0 over don't-care and too-small
        quads and over the ring between each quad and its shrunk version, else 1.
    """
    quads, dont_care, map_hw = _check_target_args(quads, dont_care, image_hw)
    quad_index, in_text, ignored = _rasterize_targets(quads, dont_care, map_hw, min_text_size, shrink_ratio)
    positive = quad_index > 0
    score_map = positive.astype(np.float32)[..., None]
    training_mask = (~(ignored | (in_text & ~positive))).astype(np.float32)[..., None]
    geo_map = np.zeros(map_hw + (5,), np.float32)
    if positive.any():
        pixel_rows, pixel_cols = np.nonzero(positive)
        owner = quad_index[pixel_rows, pixel_cols] - 1
        p0, angle, rect_w, rect_h = _min_area_rectangles(quads)
        angle, rect_w, rect_h, p0 = angle[owner], rect_w[owner], rect_h[owner], p0[owner]
        cos, sin = np.cos(angle), np.sin(angle)
        dx = pixel_cols * float(OUTPUT_STRIDE) - p0[:, 0]
        dy = pixel_rows * float(OUTPUT_STRIDE) - p0[:, 1]
        left = dx * cos - dy * sin  # (o - p0) . ex
        top = dx * sin + dy * cos  # (o - p0) . ey
        geo_map[pixel_rows, pixel_cols] = np.stack(
            [top, rect_w - left, rect_h - top, left, angle], axis=-1
        )
    return score_map, geo_map, training_mask


def _check_target_args(quads, dont_care, image_hw):
    """(quads float64 (N, 4, 2), dont_care bool (N,), map (h, w)) for make_rbox_targets; ValueError if bad."""
    quads, _ = _as_quads(quads)
    if not np.all(np.isfinite(quads)):
        raise ValueError("quads must have finite coordinates")
    count = len(quads)
    if dont_care is None:
        dont_care = np.zeros(count, bool)
    dont_care = np.asarray(dont_care)
    if dont_care.shape != (count,):
        raise ValueError(f"dont_care must be ({count},) bool like quads, got shape {dont_care.shape}")
    height, width = _as_image_hw(image_hw)
    if height % OUTPUT_STRIDE or width % OUTPUT_STRIDE:
        raise ValueError(f"image_hw must be multiples of {OUTPUT_STRIDE}, got {(height, width)}")
    return quads, dont_care.astype(bool), (height // OUTPUT_STRIDE, width // OUTPUT_STRIDE)


def _rasterize_targets(quads, dont_care, map_hw, min_text_size, shrink_ratio):
    """Per map pixel: (1 + index of the shrunk quad owning it (0: none; later quads win),
    inside any original quad, inside a don't-care or too-small quad)."""
    quad_index = np.zeros(map_hw, np.int32)
    in_text = np.zeros(map_hw, bool)
    ignored = np.zeros(map_hw, bool)
    if not len(quads):
        return quad_index, in_text, ignored
    shortest_edges = _edge_lengths(quads).min(axis=1)
    shrunk = text_cores(quads, shrink_ratio)
    masked_out = (shortest_edges < min_text_size) | dont_care
    for index in range(len(quads)):
        window = _rasterize(quads[index] / OUTPUT_STRIDE, map_hw)
        if window is not None:
            rows, cols, mask = window
            in_text[rows, cols] |= mask
            if masked_out[index]:
                ignored[rows, cols] |= mask
        window = _rasterize(shrunk[index] / OUTPUT_STRIDE, map_hw)
        if window is not None:
            rows, cols, mask = window
            quad_index[rows, cols] = np.where(mask, index + 1, quad_index[rows, cols])
    return quad_index, in_text, ignored


# --------------------------------------------------------------------------- #
# decoding
# --------------------------------------------------------------------------- #
def rbox_to_quads(origins, geometry) -> np.ndarray:
    """Restores the rotated rectangle each pixel predicts (inverse of the geo map).

    Args:
      origins: (N, 2) the pixels' input points (x, y) in input px.
      geometry: (N, 5) top, right, bottom, left distances (px) and angle (rad).

    Returns:
      float32 (N, 4, 2) corners p0..p3 (RBOX order, module docstring). Empty -> (0, 4, 2).
    """
    origins = np.asarray(origins, dtype=np.float64)
    geometry = np.asarray(geometry, dtype=np.float64)
    if origins.ndim != 2 or origins.shape[1] != 2:
        raise ValueError(f"origins must be (N, 2) pixel xy, got shape {origins.shape}")
    if geometry.shape != (len(origins), 5):
        raise ValueError(f"geometry must be ({len(origins)}, 5) like origins, got shape {geometry.shape}")
    top, right, bottom, left, angle = geometry.T
    ex = np.stack([np.cos(angle), -np.sin(angle)], axis=-1)
    ey = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    p0 = origins - left[:, None] * ex - top[:, None] * ey
    p1 = origins + right[:, None] * ex - top[:, None] * ey
    p2 = origins + right[:, None] * ex + bottom[:, None] * ey
    p3 = origins - left[:, None] * ex + bottom[:, None] * ey
    return np.stack([p0, p1, p2, p3], axis=1).astype(np.float32)


def decode_rbox(score_map, geo_map, score_map_thresh: float) -> np.ndarray:
    """Turns every pixel with score > ``score_map_thresh`` into a scored box.

    Args:
      score_map: (h, w) or (h, w, 1) scores in [0, 1].
      geo_map: (h, w, 5) RBOX geometry (module docstring).
      score_map_thresh: pixels at or below it are dropped (default: postprocess.DetectOptions).

    Returns:
      float32 (N, 9): x1, y1, ..., x4, y4 in input px (RBOX corner order) and the
      pixel's score; rows in row-major (y, then x) pixel order. Empty -> (0, 9).
    """
    score_map = np.asarray(score_map)
    if score_map.ndim == 3 and score_map.shape[-1] == 1:
        score_map = score_map[..., 0]
    if score_map.ndim != 2:
        raise ValueError(f"score_map must be (h, w) or (h, w, 1), got shape {score_map.shape}")
    geo_map = np.asarray(geo_map)
    if geo_map.shape != score_map.shape + (5,):
        raise ValueError(f"geo_map must be {score_map.shape + (5,)} to match score_map, got shape {geo_map.shape}")
    pixel_rows, pixel_cols = np.nonzero(score_map > score_map_thresh)
    origins = np.stack([pixel_cols, pixel_rows], axis=-1) * float(OUTPUT_STRIDE)
    boxes = np.empty((len(pixel_rows), 9), np.float32)
    boxes[:, :8] = rbox_to_quads(origins, geo_map[pixel_rows, pixel_cols]).reshape(-1, 8)
    boxes[:, 8] = score_map[pixel_rows, pixel_cols]
    return boxes
