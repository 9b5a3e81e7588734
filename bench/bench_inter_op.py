"""The training step with TensorFlow's default inter-op threads against one (train.py on the CPU), in one run.

    python bench/bench_inter_op.py [--backbone mobilenetv2] [--input_size 128] [--batch_size 16] [--repeats 3]

train.py runs TensorFlow with one inter-op thread on the CPU (``train._one_inter_op_thread``): with
several, the same steps from the same weights on the same batches differ in their last bits from one
process to the next. This bench prices that: ``bench/bench_train.py``'s compiled-step figure
(images/s) in fresh processes with ``TF_NUM_INTEROP_THREADS`` unset and set to 1, alternating, and
the ratio of the medians (one thread over the default). The defaults are `make demo`'s step.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def step_images_per_s(one_thread: bool, args: argparse.Namespace) -> float:
    """bench_train.py's compiled-step images/s in a fresh process."""
    env = {key: value for key, value in os.environ.items() if key != "TF_NUM_INTEROP_THREADS"}
    if one_thread:
        env["TF_NUM_INTEROP_THREADS"] = "1"
    output = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_train.py"), f"--backbone={args.backbone}",
         f"--input_size={args.input_size}", f"--batch_size={args.batch_size}", f"--steps={args.steps}",
         "--warmup=3", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["ours"]["images_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--input_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = {"default": [], "one": []}
    for _ in range(args.repeats):
        runs["default"].append(step_images_per_s(False, args))
        runs["one"].append(step_images_per_s(True, args))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(f"{args.backbone} {args.input_size}px batch {args.batch_size}, images/s of the compiled step "
          f"({args.repeats} processes each, alternating):")
    for name, label in (("default", "default inter-op threads"), ("one", "one inter-op thread (train.py)")):
        print(f"  {label:<32} median {medians[name]:6.2f}   runs {', '.join(f'{v:.2f}' for v in runs[name])}")
    print(f"one / default: {medians['one'] / medians['default']:.3f}")
    if args.json:
        print(json.dumps({"runs": runs, "ratio": medians["one"] / medians["default"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
