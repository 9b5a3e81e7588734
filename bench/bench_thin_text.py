"""How many text boxes in training crops the score map loses: the paper's shrink against ours, in one run.

    python bench/bench_thin_text.py [--data DIR ...] [--crops 600] [--seed 0]

For each folder (default: the 178 plates_dev training photos that ``bench_quality.py`` splits off,
and ``plates_ro/train``), draws crops with the demo's plate recipe (demo.DemoConfig: input 128,
``text_width_range``, ``min_text_size``) and, for every care box the loss keeps (shortest edge >=
min_text_size), counts its positive score-map pixels twice: with EAST's fixed 0.3 shrink (the
reference) and as training builds them (``geometry.make_rbox_targets``, ours). A box with no positive map pixel is invisible to the
loss: its inside is masked as the ring. Prints, per folder, the boxes and how many are invisible
under each, and their ratio.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import demo  # noqa: E402  (the plate recipe's settings)
import geometry  # noqa: E402
from augmentation import AugmentConfig, make_example  # noqa: E402
from data_preprocessor import load_dataset  # noqa: E402

DEFAULT_DATA = (REPO_ROOT / "data" / "bench_quality" / "plates_dev" / "train",
                REPO_ROOT.parent / "shared" / "data" / "plates_ro" / "train")


def paper_positive_pixels(quad: np.ndarray, input_size: int) -> int:
    """Positive score-map pixels of one quad (4, 2) under the paper's fixed shrink (the reference)."""
    shrunk = geometry.shrink_quads(quad, geometry.SHRINK_RATIO) / geometry.OUTPUT_STRIDE
    map_hw = (input_size // geometry.OUTPUT_STRIDE,) * 2
    window = geometry._rasterize(shrunk.astype(np.float64), map_hw)
    return 0 if window is None else int(window[2].sum())


def count_invisible(data: Path, crops: int, seed: int) -> tuple[int, int, int]:
    """(care boxes kept by the loss, invisible with the paper's shrink, invisible with ours) over crops."""
    recipe = demo.DemoConfig()
    low, high = (float(value) for value in recipe.text_width_range.split(","))
    config = AugmentConfig(input_size=recipe.input_size, text_width_range=(low, high),
                           min_text_size=recipe.min_text_size)
    samples = [sample for sample in load_dataset(data).samples if len(sample.quads)]
    rng = np.random.default_rng(seed)
    kept = paper = ours = 0
    for _ in range(crops):
        example = make_example(samples[int(rng.integers(len(samples)))], rng, config)
        for quad, dont_care in zip(example["quads"].astype(np.float64), example["dont_care"]):
            if dont_care or geometry._edge_lengths(quad[None]).min() < config.min_text_size:
                continue
            kept += 1
            paper += paper_positive_pixels(quad, config.input_size) == 0
            score_map, _, _ = geometry.make_rbox_targets(quad[None], None, (config.input_size,) * 2,
                                                         min_text_size=config.min_text_size)
            ours += not score_map.any()
    return kept, paper, ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="a training folder (repeatable)")
    parser.add_argument("--crops", type=int, default=600, help="training crops drawn per folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for data in args.data or DEFAULT_DATA:
        if not data.is_dir():
            print(f"{data}: not found, skipped (bench_quality.py makes the plates_dev split)")
            continue
        kept, paper, ours = count_invisible(data, args.crops, args.seed)
        print(f"{data}: {kept} care boxes in {args.crops} crops; no positive pixel: paper's shrink {paper} "
              f"({paper / max(kept, 1):.1%}), ours {ours} ({ours / max(kept, 1):.1%}); "
              f"visible boxes ours/paper {(kept - ours) / max(kept - paper, 1):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
