"""What plate sizes the training crops show: the scale keyed on plate width against plate height, in one run.

    python bench/bench_text_scale.py [--data DIR ...] [--crops 400] [--seed 0]

For each folder (default: the 178 plates_dev training photos that ``bench_quality.py`` splits off,
and ``plates_ro/train``), draws text crops twice, each recipe at its own input size and
``min_text_size``: with ``make demo``'s width key (demo.DemoConfig ``text_width_range``, the
reference) and with the fine-tune command's height key (demo.FinetuneConfig ``text_height_range``).
For every care box in a crop it prints the 5/50/95 % heights and widths in network px and the
share the loss drops (height under ``min_text_size``). Under the width key, plates of another aspect
than 2:1 meet other character sizes: that is what this measures.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import demo  # noqa: E402  (the plate recipe's settings)
import geometry  # noqa: E402
import train  # noqa: E402
from augmentation import AugmentConfig, make_example  # noqa: E402
from data_preprocessor import load_dataset  # noqa: E402

DEFAULT_DATA = (REPO_ROOT / "data" / "bench_quality" / "plates_dev" / "train",
                REPO_ROOT.parent / "shared" / "data" / "plates_ro" / "train")


def crop_config(settings, **text_size_range) -> AugmentConfig:
    """The augmentation train.py builds from a demo config's input size, min_text_size and crop ratio."""
    return train.augment_config(train.TrainConfig(
        input_size=settings.input_size, min_text_size=settings.min_text_size,
        min_crop_side_ratio=settings.min_crop_side_ratio, **text_size_range))


def care_box_sizes(samples, config: AugmentConfig, crops: int, seed: int) -> np.ndarray:
    """(K, 2) height, width in network px of every care box in ``crops`` text crops."""
    config_text_only = dataclasses.replace(config, background_ratio=0.0)
    rng = np.random.default_rng(seed)
    sizes = []
    for _ in range(crops):
        example = make_example(samples[int(rng.integers(len(samples)))], rng, config_text_only)
        care = example["quads"][~example["dont_care"]].astype(np.float64)
        if len(care):
            sizes.append(np.stack([geometry.text_heights(care), np.ptp(care[:, :, 0], axis=1)], axis=1))
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def describe(name: str, sizes: np.ndarray, min_text_size: int) -> str:
    heights, widths = sizes[:, 0], sizes[:, 1]
    return (f"  {name:<40} boxes {len(sizes):4d}  height px 5/50/95 % "
            f"{'/'.join(f'{v:.0f}' for v in np.percentile(heights, [5, 50, 95]))}  width px "
            f"{'/'.join(f'{v:.0f}' for v in np.percentile(widths, [5, 50, 95]))}  "
            f"dropped by min_text_size {np.mean(heights < min_text_size):.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, action="append", help="a training folder (repeatable)")
    parser.add_argument("--crops", type=int, default=400, help="text crops drawn per folder and recipe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    recipe, finetune = demo.DemoConfig(), demo.FinetuneConfig()
    recipes = {f"width {recipe.text_width_range} at {recipe.input_size} (make demo)": crop_config(
                   recipe, text_width_range=train.parse_text_size_range(recipe.text_width_range)),
               f"height {finetune.text_height_range} at {finetune.input_size} (fine-tune)": crop_config(
                   finetune, text_height_range=train.parse_text_size_range(finetune.text_height_range,
                                                                            "text_height_range"))}
    for data in args.data or DEFAULT_DATA:
        if not data.is_dir():
            print(f"{data}: not found, skipped (bench_quality.py makes the plates_dev split)")
            continue
        samples = [sample for sample in load_dataset(data).samples if (~sample.dont_care).any()]
        print(f"{data}:")
        medians = []
        for name, config in recipes.items():
            sizes = care_box_sizes(samples, config, args.crops, args.seed)
            medians.append(np.median(sizes[:, 0]))
            print(describe(name, sizes, recipe.min_text_size))
        print(f"  median height, height key / width key: {medians[1] / medians[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
