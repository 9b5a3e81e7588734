#!/usr/bin/env python3
"""A real license-plate run on a lent GPU: synthetic plates + the real train split -> eval on the real test split.

Runs the project's own command lines (synthetic_data.py, data_preprocessor.py split,
train.py, eval.py) with ``KERAS_BACKEND=jax`` — the GPU machine has JAX but no
TensorFlow — and writes every log plus a results JSON under ``--out``.

Evaluation images are the real test photos with their longest side scaled to
``--eval_side`` and padded (bottom/right) to a square canvas, ground truth scaled
alike: one input shape means one XLA compilation instead of one per photo size.

  python bench/gpu_real_plates.py --plates_dir .devbench/plates_dev --out $OUT --train_seconds 200
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], log_path: Path, timeout: float | None = None) -> tuple[int, float]:
    """Run one of the project's CLIs, tee its output to log_path; returns (exit code, seconds)."""
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        # Own process group, so that the data workers go too when the wall clock runs out.
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)  # train.py stops; the last saved checkpoint stays
            try:
                code = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    seconds = time.perf_counter() - start
    tail = log_path.read_text(errors="replace").splitlines()[-6:]
    print("\n".join(tail), f"\n[exit {code} after {seconds:.0f} s]", flush=True)
    return code, seconds


def generate_part(args: tuple[str, int, int, int]) -> None:
    output_dir, start, count, seed = args
    subprocess.run([sys.executable, "synthetic_data.py", "plates", "--output_dir", output_dir, "--count",
                    str(count), "--start", str(start), "--seed", str(seed), "--width", "1280", "--height", "720"],
                   cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)


def pad_to_canvas(test_dir: Path, canvas_dir: Path, side: int) -> None:
    """Scale each test photo's longest side to `side`, pad to side x side, scale its plate quads alike."""
    canvas_dir.mkdir(parents=True, exist_ok=True)
    for image_path in sorted(test_dir.glob("*.jpg")):
        image = cv2.imread(str(image_path))
        height, width = image.shape[:2]
        scale = side / max(height, width)
        resized = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
        cv2.imwrite(str(canvas_dir / image_path.name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines = []
        for line in image_path.with_suffix(".txt").read_text().splitlines():
            parts = line.split()
            if len(parts) < 8:
                continue
            coords = [f"{float(value) * scale:.1f}" for value in parts[:8]]
            lines.append(" ".join(coords + parts[8:]))
        (canvas_dir / f"{image_path.stem}.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plates_dir", type=Path, required=True, help="copy of shared/data/plates_dev")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/east_plates"))
    parser.add_argument("--synthetic", type=int, default=1200)
    parser.add_argument("--train_seconds", type=float, default=200)
    parser.add_argument("--max_steps", type=int, default=6000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--nb_workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--eval_side", type=int, default=1024)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--input_size", type=int, default=512)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    results: dict = {"backend": os.environ.get("KERAS_BACKEND"), "args": {k: str(v) for k, v in vars(args).items()}}

    def save_results() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=1))

    python = sys.executable
    start = time.perf_counter()
    # 1. real photos, split 80/20 with our split tool
    code, _ = run([python, "data_preprocessor.py", "split", f"--data_path={args.plates_dir / 'images'}",
                   f"--train_dir={work / 'real_train'}", f"--test_dir={work / 'real_test'}", "--ratio=0.8",
                   "--seed=0", "--annotation_format=plate"], args.out / "split.log")
    if code:
        return code
    # 2. synthetic plates, generated in parallel slices (image k depends only on (seed, k))
    parts = max(1, args.nb_workers)
    per_part = -(-args.synthetic // parts)
    with ProcessPoolExecutor(parts) as pool:
        list(pool.map(generate_part, [(str(work / f"syn_{i}"), i * per_part, per_part, 7) for i in range(parts)]))
    train_dir = work / "train_all"
    train_dir.mkdir()
    for folder in [work / "real_train", *sorted(work.glob("syn_*"))]:
        for path in folder.iterdir():
            shutil.copy2(path, train_dir / path.name)
    results["train_images"] = len(list(train_dir.glob("*.jpg")))
    results["real_train_images"] = len(list((work / "real_train").glob("*.jpg")))
    results["data_seconds"] = round(time.perf_counter() - start, 1)
    save_results()
    # 3. train (stopped by wall clock; the last saved checkpoint is evaluated)
    checkpoint = work / "ckpt"
    code, seconds = run([python, "train.py", f"--training_data_path={train_dir}", f"--checkpoint_path={checkpoint}",
                         "--annotation_format=plate", f"--backbone={args.backbone}", "--backbone_weights=none",
                         f"--input_size={args.input_size}", f"--batch_size={args.batch_size}", f"--nb_workers={args.nb_workers}",
                         f"--max_steps={args.max_steps}", "--save_checkpoint_steps=200", "--mixed_precision",
                         f"--init_learning_rate={args.learning_rate}", "--lr_decay_steps=1500",
                         "--lr_decay_rate=0.5", "--log_steps=50"],
                        args.out / "train.log", timeout=args.train_seconds)
    results["train_exit"] = code
    results["train_seconds"] = round(seconds, 1)
    latest = checkpoint / "latest"
    results["checkpoint"] = latest.read_text().strip() if latest.exists() else None
    if (checkpoint / "train_log.csv").exists():
        shutil.copy2(checkpoint / "train_log.csv", args.out / "train_log.csv")
    save_results()
    if results["checkpoint"] is None:
        return 1
    # 4. evaluate on the real test split (fixed canvas) with ICDAR scoring
    canvas = work / "real_test_canvas"
    pad_to_canvas(work / "real_test", canvas, args.eval_side)
    code, seconds = run([python, "eval.py", f"--test_data_path={canvas}", f"--model_path={checkpoint}",
                         f"--output_dir={work / 'eval_out'}", f"--gt_path={canvas}", "--annotation_format=plate",
                         f"--max_side_len={args.eval_side}"], args.out / "eval.log", timeout=150)
    results["eval_exit"] = code
    results["eval_seconds"] = round(seconds, 1)
    summary = work / "eval_out" / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        results["evaluation"] = {key: data[key] for key in data if key != "per_image"}
        shutil.copy2(summary, args.out / "summary.json")
    save_results()
    evaluation = {key: value for key, value in results.get("evaluation", {}).items()
                  if key not in ("per_image", "config", "unreadable")}
    print(json.dumps({"train_images": results.get("train_images"), "checkpoint": results.get("checkpoint"),
                      "train_seconds": results.get("train_seconds"), "evaluation": evaluation})[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
