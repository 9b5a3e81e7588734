"""How steady the scale a checkpoint records is: 256 crop draws (the old count) against SCALE_DRAWS, in one run.

    python bench/bench_recorded_scale.py [--data DIR ...] [--seeds 10]

train.py records ``augmentation.implied_max_side_len`` (the median, over random text crops, of the
whole image's longer side in network px) as eval.py's default ``--max_side_len``. It draws with a fixed
seed, so a run always records the same number; but with too few draws that number is one random median
among several, a 32 px step or two from the median the crops really have. For each folder (default:
the 178 plates_dev training photos that ``bench_quality.py`` splits off, and ``plates_ro/train``) and
the fine-tune command's augmentation (demo.FinetuneConfig), it prints the value over ``--seeds`` draw
seeds at 256 draws (the reference) and at ``augmentation.SCALE_DRAWS``, their spread and the seconds
per call.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import augmentation  # noqa: E402
import demo  # noqa: E402  (the fine-tune command's settings)
import train  # noqa: E402
from bench_text_scale import crop_config  # noqa: E402  (the fine-tune's augmentation, built as train.py does)
from data_preprocessor import load_dataset  # noqa: E402

REFERENCE_DRAWS = 256
DEFAULT_DATA = (REPO_ROOT / "data" / "bench_quality" / "plates_dev" / "train",
                REPO_ROOT.parent / "shared" / "data" / "plates_ro" / "train")


def recorded_over_seeds(samples, config, draws: int, seeds: int) -> tuple[list[int], float]:
    """(implied_max_side_len for draw seeds 0..seeds-1, mean seconds per call)."""
    started = time.perf_counter()
    values = [augmentation.implied_max_side_len(samples, config, draws=draws, seed=seed) for seed in range(seeds)]
    return values, (time.perf_counter() - started) / seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="a training folder (repeatable)")
    parser.add_argument("--seeds", type=int, default=10, help="draw seeds per count")
    args = parser.parse_args(argv)
    finetune = demo.FinetuneConfig()
    config = crop_config(finetune, text_height_range=train.parse_text_size_range(finetune.text_height_range,
                                                                                "text_height_range"))
    for data in args.data or DEFAULT_DATA:
        if not data.is_dir():
            print(f"{data}: not found, skipped (bench_quality.py makes the plates_dev split)")
            continue
        samples = load_dataset(data).samples
        print(f"{data}:")
        spreads = []
        for name, draws in ((f"{REFERENCE_DRAWS} draws (reference)", REFERENCE_DRAWS),
                            (f"{augmentation.SCALE_DRAWS} draws (ours)", augmentation.SCALE_DRAWS)):
            values, seconds = recorded_over_seeds(samples, config, draws, args.seeds)
            spreads.append(max(values) - min(values))
            print(f"  {name:<22} recorded max_side_len over {args.seeds} seeds: {values}  "
                  f"median {np.median(values):.0f}, spread {spreads[-1]} px, {seconds:.2f} s per call")
        print(f"  spread, reference / ours: {spreads[0]} / {spreads[1]} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
