#!/usr/bin/env python3
"""Input-pipeline throughput: our BatchStream against EAST-tf2's generator, same files, same run.

Writes a few dozen synthetic 1280x720 JPEG scenes with text (ICDAR 2015 layout, so both pipelines
read them), then measures training samples per second at input_size 512:

- ours with 1 and 2 worker processes (one OpenCV thread each), after a warm-up;
- with --reference_repo (a checkout of solaris33/EAST-tf2), its ``data_processor.generator`` in
  this process. That module imports tensorflow and matplotlib without using them for training
  batches and relies on ``np.bool`` (gone from numpy 2); this script stubs those three things for
  the reference only.

  python bench/bench_pipeline.py [--json] [--reference_repo .ref/EAST-tf2] [--batches 12]

speedup = ours with 1 worker / the reference (both use one process). With --json the last line
printed is one JSON object: samples_per_s_1w, samples_per_s_2w, reference_samples_per_s, speedup
(the last two null without --reference_repo).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data_preprocessor as dp  # noqa: E402

IMAGE_HW = (720, 1280)
INPUT_SIZE = 512
WORDS = ("EXIT", "SALE", "OPEN", "Station", "Coffee", "PARKING", "B2", "Welcome", "###")


def write_scenes(folder: Path, count: int, seed: int = 0) -> None:
    """count JPEG scenes (textured background, 5-12 words each) + gt_img_N.txt in ICDAR 2015 format."""
    rng = np.random.default_rng(seed)
    height, width = IMAGE_HW
    for index in range(1, count + 1):
        # Smooth colour field plus noise: a JPEG that decodes about as slowly as a real photo.
        low = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8)
        image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        image = cv2.add(image, rng.integers(0, 8, (height, width, 3), dtype=np.uint8))
        lines = []
        for _ in range(int(rng.integers(5, 13))):
            word = WORDS[int(rng.integers(len(WORDS)))]
            scale = float(rng.uniform(0.8, 3.0))
            (text_w, text_h), baseline = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
            x = int(rng.integers(0, max(1, width - text_w)))
            y = int(rng.integers(text_h, height - baseline))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.putText(image, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 2)
            x1, y1, x2, y2 = x, y - text_h, min(width - 1, x + text_w), min(height - 1, y + baseline)
            lines.append(f"{x1},{y1},{x2},{y1},{x2},{y2},{x1},{y2},{word}")
        cv2.imwrite(str(folder / f"img_{index}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (folder / f"gt_img_{index}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def time_ours(samples, nb_workers: int, batches: int, batch_size: int) -> float:
    config = dp.AugmentConfig(input_size=INPUT_SIZE)
    with dp.BatchStream(samples, seed=0, batch_size=batch_size, config=config, nb_workers=nb_workers,
                        prefetch=2 * nb_workers) as stream:
        for _ in range(2):  # warm-up: worker start, first imports
            next(stream)
        start = time.perf_counter()
        for _ in range(batches):
            next(stream)
        return batches * batch_size / (time.perf_counter() - start)


def load_reference(repo: Path):
    """EAST-tf2's data_processor module, with its unused heavy imports stubbed."""
    for name in ("tensorflow", "matplotlib", "matplotlib.pyplot", "matplotlib.patches"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib"].pyplot = sys.modules["matplotlib.pyplot"]
    sys.modules["matplotlib"].patches = sys.modules["matplotlib.patches"]
    if not hasattr(np, "bool"):
        np.bool = bool  # removed in numpy 1.24; the reference's load_annotation uses it
    spec = importlib.util.spec_from_file_location("east_tf2_data_processor", repo / "data_processor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_reference(repo: Path, folder: Path, samples: int, max_seconds: float) -> float:
    reference = load_reference(repo)
    reference_flags = types.SimpleNamespace(
        training_data_path=str(folder), input_size=INPUT_SIZE, batch_size=1, min_crop_side_ratio=0.1,
        geometry="RBOX", min_text_size=10, suppress_warnings_and_error_messages=True)
    np.random.seed(0)
    generator = reference.generator(reference_flags, input_size=INPUT_SIZE)
    next(generator)  # warm-up
    start = time.perf_counter()
    produced = 0
    while produced < samples and (produced < 2 or time.perf_counter() - start < max_seconds):
        next(generator)
        produced += 1
    return produced / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--reference_repo", type=Path, help="checkout of solaris33/EAST-tf2")
    parser.add_argument("--images", type=int, default=32, help="synthetic 1280x720 scenes to write")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per worker count")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--reference_samples", type=int, default=16, help="timed samples of the reference")
    parser.add_argument("--reference_max_seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.reference_repo is not None and not (args.reference_repo / "data_processor.py").is_file():
        parser.error(f"--reference_repo {args.reference_repo} has no data_processor.py")

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        folder = Path(tmp)
        write_scenes(folder, args.images)
        samples = dp.load_dataset(folder, "icdar2015").samples
        result = {
            "samples_per_s_1w": round(time_ours(samples, 1, args.batches, args.batch_size), 1),
            "samples_per_s_2w": round(time_ours(samples, 2, args.batches, args.batch_size), 1),
            "reference_samples_per_s": None,
            "speedup": None,
        }
        if args.reference_repo is not None:
            reference = time_reference(args.reference_repo, folder, args.reference_samples,
                                       args.reference_max_seconds)
            result["reference_samples_per_s"] = round(reference, 2)
            result["speedup"] = round(result["samples_per_s_1w"] / reference, 1)

    print(f"ours, 1 worker:  {result['samples_per_s_1w']} samples/s at {INPUT_SIZE} from 1280x720 JPEGs")
    print(f"ours, 2 workers: {result['samples_per_s_2w']} samples/s")
    if result["reference_samples_per_s"] is not None:
        print(f"EAST-tf2 generator: {result['reference_samples_per_s']} samples/s; "
              f"speedup (1 worker / reference): {result['speedup']}x")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
