"""CPU time per 1280x720 image for the Keras model and each exported format, in one run.

    python bench/bench_export.py [--backbone resnet50] [--model_path DIR] [--images 3] [--repeats 2]
                                 [--formats keras,saved_model,tflite,onnx,tflite_int8,onnx_int8] [--json]

Exports one model (EAST-ResNet50 with random weights by default, ``--model_path`` loads a
trained checkpoint) to every format into a temporary folder, then times, per image, the
network call (input 704x1280 after the multiple-of-32 resize) and the whole eval.py path
(resize + normalize + network + decode/NMS) with exported_models.load_predictor. Export
time and one warm-up call per format are not timed. The ratio column is Keras time /
format time (network only). Threads: TensorFlow's default, and ``os.cpu_count()`` for
TFLite and onnxruntime.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
IMAGE_W, IMAGE_H = 1280, 720
ALL_FORMATS = ("keras", "saved_model", "tflite", "onnx", "tflite_int8", "onnx_int8")


def make_images(count: int, seed: int) -> list[np.ndarray]:
    """``count`` RGB 1280x720 street-like images with text drawn on them."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = np.full((IMAGE_H, IMAGE_W, 3), rng.integers(60, 200, 3), np.uint8)
        for _ in range(12):
            origin = (int(rng.integers(0, IMAGE_W - 300)), int(rng.integers(40, IMAGE_H)))
            cv2.putText(image, "TEXT %d" % rng.integers(1000), origin, cv2.FONT_HERSHEY_SIMPLEX,
                        float(rng.uniform(0.8, 2.5)), tuple(int(v) for v in rng.integers(0, 255, 3)), 3)
        images.append(image)
    return images


def time_format(predict, images: list[np.ndarray], repeats: int) -> dict:
    """Mean ms per image: network only and the whole path (resize, network on uint8 pixels, decode, NMS)."""
    import postprocess

    prepared = [postprocess.resize_for_inference(image) for image in images]
    predict(prepared[0][0][None])  # warm-up (graph trace, allocation)
    predict(prepared[0][0][None])
    network, total = [], []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            resized, _ = postprocess.resize_for_inference(image)
            inputs = resized[None]
            network_start = time.perf_counter()
            score_map, geo_map = predict(inputs)
            network_done = time.perf_counter()
            postprocess.detect_boxes(score_map[0], geo_map[0])
            total.append(time.perf_counter() - start)
            network.append(network_done - network_start)
    return {"network_ms": 1000 * float(np.mean(network)), "total_ms": 1000 * float(np.mean(total)),
            "network_ms_min": 1000 * float(np.min(network))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--input_size", type=int, default=512)
    parser.add_argument("--model_path", default=None, help="a trained checkpoint instead of random weights")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--formats", default=",".join(ALL_FORMATS[:4]), help=f"comma list of {ALL_FORMATS}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    formats = [name for name in args.formats.split(",") if name]
    unknown = sorted(set(formats) - set(ALL_FORMATS))
    if unknown:
        parser.error(f"--formats: unknown {unknown}; choose from {ALL_FORMATS}")

    import keras

    import export
    import exported_models
    import model as east_model
    import postprocess

    if args.model_path:
        import checkpoints
        network, info = checkpoints.load_model_for_inference(args.model_path)
        description = f"{info['backbone']} checkpoint {info['checkpoint']}"
    else:
        keras.utils.set_random_seed(args.seed)
        network = east_model.build_east(args.input_size, backbone=args.backbone, backbone_weights="none")
        description = f"{args.backbone}, random weights"
    images = make_images(args.images, args.seed)
    calibration = [postprocess.resize_for_inference(image, 512)[0][None].astype(np.float32) for image in images]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as scratch:
        for name in formats:
            export_seconds = 0.0
            if name == "keras":
                predict = exported_models.keras_batch_function(network)
            else:
                export_format, _, quantize = name.rpartition("_") if name.endswith("_int8") else (name, "", "")
                start = time.perf_counter()
                path = export.export_model(network, scratch, export_format, quantize=quantize or None,
                                           calibration_images=calibration)
                export_seconds = time.perf_counter() - start
                predict = exported_models.load_predictor(path, num_threads=os.cpu_count())
            timing = time_format(predict, images, args.repeats)
            rows.append({"format": name, "export_s": round(export_seconds, 1), **timing})
            print(f"  {name}: network {timing['network_ms']:.0f} ms", file=sys.stderr, flush=True)

    keras_ms = next((row["network_ms"] for row in rows if row["format"] == "keras"), None)
    print(f"EAST {description}; {args.images} image(s) {IMAGE_W}x{IMAGE_H} (network input "
          f"{IMAGE_H // 32 * 32}x{IMAGE_W}) x {args.repeats}; {os.cpu_count()} CPU(s)")
    print(f"{'format':<13}{'network ms':>11}{'(min)':>8}{'total ms':>10}{'keras/this':>12}{'export s':>10}")
    for row in rows:
        ratio = f"{keras_ms / row['network_ms']:.2f}x" if keras_ms else "-"
        row["speedup_vs_keras"] = round(keras_ms / row["network_ms"], 3) if keras_ms else None
        print(f"{row['format']:<13}{row['network_ms']:>11.0f}{row['network_ms_min']:>8.0f}{row['total_ms']:>10.0f}"
              f"{ratio:>12}{row['export_s']:>10.1f}")
    if args.json:
        print(json.dumps({"bench": "export", "model": description, "image": [IMAGE_W, IMAGE_H],
                          "images": args.images, "repeats": args.repeats, "cpus": os.cpu_count(), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
