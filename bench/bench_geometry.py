"""Times RBOX label maps and decode + locality-aware NMS against straightforward references.

    python bench/bench_geometry.py [--json] [--samples 200] [--reference_samples 10]

* Label maps: geometry.make_rbox_targets on synthetic 512 x 512 samples (1-30
  quads each) against the per-pixel way EAST-tf2 builds them (full-size maps,
  a Python loop over every pixel of every shrunk quad, then keep [::4, ::4]),
  written below with the same shrink and rectangle so only the method differs.
  The reference is slow, so it runs on the first --reference_samples samples and
  the speed-up compares both on exactly those samples.
* Decode + NMS: postprocess-style decode_rbox + nms_locality on maps holding 10k
  and 50k positive pixels (slightly noisy geometry, so runs really merge), with
  the automatic backend (numpy), the numpy backend named explicitly, and the
  C++ lanms wheel alone (NMS only) on the same decoded boxes.

--json prints one JSON line last. Times are medians in ms.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geometry  # noqa: E402
from geometry import OUTPUT_STRIDE, decode_rbox, make_rbox_targets, min_area_rectangles, shrink_quads  # noqa: E402
from locality_aware_nms import LANMS_AVAILABLE, nms_locality  # noqa: E402

IMAGE_SIZE = 512


def random_quads(rng: np.random.Generator, count: int, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """`count` rotated rectangles / perspective quads inside the image (they may overlap)."""
    quads = []
    while len(quads) < count:
        width = rng.uniform(10, 400)
        height = rng.uniform(10, min(width, 120))
        angle = rng.uniform(-np.pi / 2, np.pi / 2)
        u = np.array([np.cos(angle), np.sin(angle)])
        v = np.array([-np.sin(angle), np.cos(angle)])
        quad = np.array([-width / 2 * u - height / 2 * v, width / 2 * u - height / 2 * v,
                         width / 2 * u + height / 2 * v, -width / 2 * u + height / 2 * v])
        if rng.random() < 0.5:
            quad = quad + rng.uniform(-0.15, 0.15, (4, 2)) * height
        span = quad.max(0) - quad.min(0)
        if np.any(span > image_size - 1):
            continue
        quad = quad - quad.min(0) + rng.uniform(0, image_size - 1 - span)
        quads.append(geometry.order_clockwise_from_top_left(quad))
    return np.array(quads, np.float32)


def reference_label_maps(quads, dont_care, image_hw, min_text_size=10):
    """The per-pixel way (EAST-tf2 generate_rbox): full-size maps, loop over pixels, keep [::4, ::4]."""
    height, width = image_hw
    score_map = np.zeros((height, width), np.uint8)
    shrunk_mask = np.zeros((height, width), np.int32)
    text_mask = np.zeros((height, width), np.uint8)
    small_mask = np.ones((height, width), np.uint8)
    geo_map = np.zeros((height, width, 5), np.float32)
    shrunk = shrink_quads(quads)
    rectangles = min_area_rectangles(quads)
    _, angles, _, _ = geometry._min_area_rectangles(quads.astype(np.float64))
    for index, (quad, tag) in enumerate(zip(quads, dont_care)):
        shrunk_int = shrunk[index].astype(np.int32)[None]
        cv2.fillPoly(score_map, shrunk_int, 1)
        cv2.fillPoly(shrunk_mask, shrunk_int, index + 1)
        cv2.fillPoly(text_mask, quad.astype(np.int32)[None], 1)
        sides = [np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]
        if min(sides) < min_text_size or tag:
            cv2.fillPoly(small_mask, quad.astype(np.int32)[None], 0)
        p0, p1, p2, p3 = rectangles[index]
        for y, x in np.argwhere(shrunk_mask == index + 1):
            point = np.array([x, y], np.float32)
            for channel, (a, b) in enumerate(((p0, p1), (p1, p2), (p2, p3), (p3, p0))):
                edge, offset = b - a, a - point
                geo_map[y, x, channel] = abs(edge[0] * offset[1] - edge[1] * offset[0]) / np.linalg.norm(edge)
            geo_map[y, x, 4] = angles[index]
    boundary = 1 - (text_mask.astype(np.int32) - (shrunk_mask > 0))
    training_mask = small_mask * boundary
    keep = (slice(None, None, OUTPUT_STRIDE), slice(None, None, OUTPUT_STRIDE))
    return score_map[keep], geo_map[keep], training_mask[keep]


def dense_text_maps(rng: np.random.Generator, positives: int):
    """Score/geo maps with exactly `positives` text pixels (a grid of rotated lines of text)."""
    side = 1280 if positives <= 16000 else 3072
    quads = []
    for top in range(8, side - 64, 64):
        for left in range(8, side - 160, 160):
            width, height = rng.uniform(90, 140), rng.uniform(24, 44)
            angle = rng.uniform(-0.12, 0.12)
            u = np.array([np.cos(angle), np.sin(angle)])
            v = np.array([-np.sin(angle), np.cos(angle)])
            centre = np.array([left + 75, top + 28])
            quads.append([centre - width / 2 * u - height / 2 * v, centre + width / 2 * u - height / 2 * v,
                          centre + width / 2 * u + height / 2 * v, centre - width / 2 * u + height / 2 * v])
    quads = np.array(quads, np.float32)
    score_map, geo_map, _ = make_rbox_targets(quads, np.zeros(len(quads), bool), (side, side))
    score_map = score_map[..., 0]
    flat = score_map.reshape(-1)
    on = np.flatnonzero(flat > 0)
    if len(on) < positives:
        raise RuntimeError(f"synthetic map holds only {len(on)} text pixels, {positives} asked")
    flat[on[positives:]] = 0
    # network-like outputs: scores in (0.8, 1], geometry off by ~0.5 px
    score_map = score_map * rng.uniform(0.81, 1.0, score_map.shape).astype(np.float32)
    noise = rng.normal(0, 0.5, geo_map.shape).astype(np.float32) * np.array([1, 1, 1, 1, 0.002], np.float32)
    return score_map, geo_map + noise


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--reference_samples", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="runs per decode + NMS timing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    samples = [random_quads(rng, int(rng.integers(1, 31))) for _ in range(args.samples)]
    flags = [rng.random(len(quads)) < 0.1 for quads in samples]
    image_hw = (IMAGE_SIZE, IMAGE_SIZE)

    per_sample = []
    for quads, dont_care in zip(samples, flags):
        start = time.perf_counter()
        make_rbox_targets(quads, dont_care, image_hw)
        per_sample.append((time.perf_counter() - start) * 1e3)
    per_sample = np.array(per_sample)
    label_maps_ms = float(per_sample.mean())
    ten_quads = [random_quads(rng, 10) for _ in range(50)]
    label_maps_ms_10_quads = median_ms(lambda: [make_rbox_targets(q, np.zeros(10, bool), image_hw) for q in ten_quads], 3) / 50

    subset = range(min(args.reference_samples, len(samples)))
    ours_subset, reference_subset, agreement = [], [], []
    for index in subset:
        start = time.perf_counter()
        score, geo, mask = make_rbox_targets(samples[index], flags[index], image_hw)
        ours_subset.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        ref_score, ref_geo, ref_mask = reference_label_maps(samples[index], flags[index], image_hw)
        reference_subset.append((time.perf_counter() - start) * 1e3)
        agreement.append(np.mean(score[..., 0] == ref_score))
    reference_ms = float(np.mean(reference_subset))
    speedup = reference_ms / float(np.mean(ours_subset))

    results = {
        "label_maps_ms": round(label_maps_ms, 3),
        "label_maps_ms_10_quads": round(label_maps_ms_10_quads, 3),
        "reference_ms": round(reference_ms, 1),
        "label_maps_speedup": round(speedup, 1),
        "reference_samples": len(subset),
        "score_map_agreement_with_reference": round(float(np.mean(agreement)), 4),
    }
    for positives in (10_000, 50_000):
        score_map, geo_map = dense_text_maps(rng, positives)
        boxes = decode_rbox(score_map, geo_map, 0.8)
        tag = f"{positives // 1000}k"
        results[f"decode_nms_ms_{tag}"] = round(
            median_ms(lambda: nms_locality(decode_rbox(score_map, geo_map, 0.8), 0.2), args.repeats), 2
        )
        results[f"decode_nms_python_ms_{tag}"] = round(
            median_ms(lambda: nms_locality(decode_rbox(score_map, geo_map, 0.8), 0.2, backend="python"), args.repeats), 2
        )
        results[f"lanms_cpp_ms_{tag}"] = (
            round(median_ms(lambda: nms_locality(boxes, 0.2, backend="lanms"), args.repeats), 2)
            if LANMS_AVAILABLE
            else None
        )
        results[f"boxes_after_nms_{tag}"] = int(len(nms_locality(boxes, 0.2)))
    results["nms_backend"] = "python"  # what backend="auto" runs

    print(f"label maps: {label_maps_ms:.2f} ms/sample over {len(samples)} samples "
          f"({label_maps_ms_10_quads:.2f} ms with 10 quads)")
    print(f"per-pixel reference: {reference_ms:.0f} ms/sample on {len(subset)} samples -> {speedup:.0f}x faster; "
          f"score maps agree on {results['score_map_agreement_with_reference']:.2%} of pixels")
    for tag in ("10k", "50k"):
        print(f"decode + NMS, {tag} positive pixels: {results[f'decode_nms_ms_{tag}']} ms "
              f"({results['nms_backend']} backend), python backend {results[f'decode_nms_python_ms_{tag}']} ms, "
              f"C++ lanms alone {results[f'lanms_cpp_ms_{tag}']} ms")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
