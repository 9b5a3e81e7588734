"""Our train step (JAX backend) against the PyTorch EAST anchor on the same GPU, in one run, with the ratio.

    python bench/bench_train_gpu.py --anchor ../shared/bench/torch_east_anchor.py \\
        [--batch_sizes 64,128] [--float32] [--steps 30] [--json]

For each batch size it runs, one process after the other (JAX and PyTorch each hold the GPU's
memory while they run):

* ours: ``KERAS_BACKEND=jax bench/bench_train.py --batch_sizes B --mixed_precision on`` (mixed
  bfloat16; ``--float32`` adds the float32 row), which times ``train_step.TrainStepRunner``,
  the step train.py runs;
* the anchor, bf16 autocast + channels_last, with ``--compile`` and without;

then prints ours / the anchor's best figure at that batch size. The machine needs jax, keras
and torch with CUDA; it needs no TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def last_json_line(output: str) -> dict:
    """The last line of ``output`` that parses as a JSON object."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON line in the output")


def run_json(command: list[str], env: dict, timeout: float) -> dict:
    """Run ``command``; its last JSON line, or {"error": ...} when it fails."""
    print("$", " ".join(command), flush=True)
    try:
        result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if result.returncode != 0:
        return {"error": f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1:]}"}
    try:
        return last_json_line(result.stdout)
    except ValueError as error:
        return {"error": str(error)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", required=True, help="path of torch_east_anchor.py")
    parser.add_argument("--batch_sizes", default="64,128")
    parser.add_argument("--float32", action="store_true", help="also time our float32 step")
    parser.add_argument("--input_size", type=int, default=512)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=240, help="seconds per process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.anchor).is_file():
        parser.error(f"--anchor: no file at {args.anchor!r}")

    ours_env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    rows = []
    for batch_size in (int(item) for item in args.batch_sizes.split(",") if item):
        ours = run_json([sys.executable, "bench/bench_train.py", "--batch_sizes", str(batch_size),
                         "--mixed_precision", "both" if args.float32 else "on",
                         "--input_size", str(args.input_size), "--backbone", args.backbone,
                         "--steps", str(args.steps), "--warmup", str(args.warmup), "--json"],
                        ours_env, args.timeout)
        anchors = {}
        for compiled in (True, False):
            command = [sys.executable, args.anchor, "--backbone", args.backbone, "--batch", str(batch_size),
                       "--size", str(args.input_size), "--amp", "--steps", str(args.steps)]
            anchors["compile" if compiled else "eager"] = run_json(
                command + (["--compile"] if compiled else []), dict(os.environ), args.timeout)
        row = {"batch": batch_size, "device": ours.get("device") or anchors["compile"].get("gpu"),
               "ours": {run["policy"]: run["images_per_s"] for run in ours.get("runs", [])},
               "anchor": {name: result.get("images_per_s") for name, result in anchors.items()},
               "errors": {name: result["error"] for name, result in
                          [("ours", ours), *anchors.items()] if "error" in result}}
        ours_bf16 = row["ours"].get("mixed_bfloat16")
        anchor_best = max((value for value in row["anchor"].values() if value), default=None)
        row["ratio_vs_anchor_best"] = round(ours_bf16 / anchor_best, 3) if ours_bf16 and anchor_best else None
        rows.append(row)
        print(f"batch {batch_size:4d}: ours bf16 {ours_bf16} img/s"
              + (f", float32 {row['ours'].get('float32')}" if args.float32 else "")
              + f" | anchor compiled {row['anchor']['compile']}, eager {row['anchor']['eager']}"
              + (f" | ours / anchor best = {row['ratio_vs_anchor_best']:.2f}x" if row["ratio_vs_anchor_best"] else "")
              + (f" | errors: {row['errors']}" if row["errors"] else ""), flush=True)
    if args.json:
        print(json.dumps({"input_size": args.input_size, "backbone": args.backbone, "rows": rows}))
    return 0 if all(row["ratio_vs_anchor_best"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
