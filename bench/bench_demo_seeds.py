"""The `make demo` recipe over several seeds, on real photos; a changed checkout beside it, in one run.

    python bench/bench_demo_seeds.py [--seeds 0,1,2,3] [--variant DIR] [--json] [--work_dir DIR]

One run of the synthetic-only recipe is a lottery (README "Results": 24-29 of plates_dev's 44 test photos
over four seeds of the same command), so a change to the scenes or the recipe is judged on several seeds.
For each seed this trains the recipe with ``demo.py --seed S --root ...`` (scenes, split, training, the
demo's own evaluation) from this checkout and, with ``--variant``, from another one (a git worktree that
holds the change), then runs eval.py at its defaults on four sets of real photos no model here trained
on, and prints images all correct per seed, the means, and the variant's sum over the reference's:

  plates_dev test / train   bench_quality's split of ../shared/data/plates_dev (44 / 178 photos)
  plates_ro test / train    ../shared/data/plates_ro's test/ and train/ (107 / 427 frames, VOC)

Trained models and evaluations are cached under ``--work_dir`` by checkout and seed (a checkout's key is
its ``git rev-parse HEAD`` and ``git diff HEAD``), so a rerun only prints. About 13 minutes a seed and
checkout on a 2-core CPU (7 of training, 6 of evaluation).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import eval as east_eval  # noqa: E402
from bench_quality import SHARED_DATA, prepare_datasets  # noqa: E402

DEFAULT_WORK_DIR = REPO_ROOT / "data" / "bench_demo_seeds"  # git-ignored
PHOTO_SETS = ("plates_dev test", "plates_ro test", "plates_dev train", "plates_ro train")


def checkout_key(checkout: Path) -> str:
    """A short hash of a checkout's commit and uncommitted changes: the cache key of what it trains."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True)
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True)
    return hashlib.sha1((head.stdout + diff.stdout).encode()).hexdigest()[:10]


def _run(arguments: list[str], checkout: Path, log_path: Path) -> int:
    """``python <arguments>`` in ``checkout``, output to log_path; returns the exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print("$ (in " + str(checkout) + ") python " + " ".join(arguments), flush=True)
    with log_path.open("w") as log:
        return subprocess.run([sys.executable, *arguments], cwd=checkout, stdout=log, stderr=subprocess.STDOUT).returncode


def seed_run(checkout: Path, seed: int, folders: dict[str, Path], work_dir: Path) -> dict[str, int]:
    """Trains the recipe at ``seed`` with ``checkout``'s code (cached) and scores it on every photo set.

    Returns:
        photo set name -> images all correct at eval.py's defaults.
    """
    root = work_dir / f"{checkout_key(checkout)}-seed{seed}"
    model = root / "checkpoints" / "demo" / "plates"
    if not (root / "trained").is_file():
        # demo.py exits 1 when its own synthetic test split falls short of the demo's target: the model
        # is still the recipe's, so only a missing checkpoint is a failure here.
        _run(["demo.py", f"--seed={seed}", f"--root={root}"], checkout, root / "demo.log")
        if not (model / "latest").exists():
            raise RuntimeError(f"demo.py --seed={seed} left no checkpoint in {model}; see {root / 'demo.log'}")
        (root / "trained").write_text("demo.py finished\n")
    counts = {}
    for name, folder in folders.items():
        out = root / "eval" / name.replace(" ", "_")
        if not (out / "summary.json").is_file():
            status = _run(["eval.py", f"--test_data_path={folder}", f"--model_path={model}", f"--output_dir={out}",
                           f"--gt_path={folder}", "--nowrite_images"], checkout, out.with_suffix(".log"))
            if status != 0:
                raise RuntimeError(f"eval.py failed on {folder}; see {out.with_suffix('.log')}")
        counts[name] = json.loads((out / "summary.json").read_text())["evaluation"]["images_all_correct"]
    return counts


def summarize(runs: dict[int, dict[str, int]]) -> dict[str, float]:
    """Per photo set, the mean over seeds of images all correct, plus ``sum``: the mean of each seed's sum."""
    means = {name: sum(run[name] for run in runs.values()) / len(runs) for name in PHOTO_SETS}
    return means | {"sum": sum(sum(run[name] for name in PHOTO_SETS) for run in runs.values()) / len(runs)}


def format_table(results: dict[str, dict[int, dict[str, int]]], sizes: dict[str, int]) -> str:
    """One row per checkout and seed, a mean row per checkout, then each variant's mean sum over the reference's."""
    header = f"{'checkout':<10} {'seed':>4}  " + "  ".join(f"{name:>16}" for name in PHOTO_SETS) + "    sum"
    lines = [header, "-" * len(header)]
    means = {}
    for label, runs in results.items():
        for seed, run in runs.items():
            cells = "  ".join(f"{run[name]:>10}/{sizes[name]:<5}" for name in PHOTO_SETS)
            lines.append(f"{label:<10} {seed:>4}  {cells}  {sum(run.values()):>5}")
        means[label] = summarize(runs)
        cells = "  ".join(f"{means[label][name]:>10.1f}/{sizes[name]:<5}" for name in PHOTO_SETS)
        lines.append(f"{label:<10} {'mean':>4}  {cells}  {means[label]['sum']:>5.1f}")
    reference = next(iter(means))
    for label in list(means)[1:]:
        ratio = means[label]["sum"] / means[reference]["sum"]
        lines.append(f"{label} / {reference}: {ratio:.3f} of the photos all correct (mean sum over seeds)")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    seeds = [int(part) for part in text.split(",") if part.strip()]
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: distinct integers, comma-separated, got {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2, 3])
    parser.add_argument("--variant", type=Path, help="another checkout (a git worktree with a change) to run beside this one")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--json", action="store_true", help="print the per-seed counts as JSON too")
    args = parser.parse_args(argv)
    if args.variant is not None and not (args.variant / "demo.py").is_file():
        parser.error(f"--variant {args.variant}: no demo.py there (give a checkout of this project)")
    if not (SHARED_DATA / "plates_dev").is_dir() or not (SHARED_DATA / "plates_ro").is_dir():
        print(f"bench_demo_seeds.py: needs {SHARED_DATA}/plates_dev and plates_ro", file=sys.stderr)
        return 2
    work_dir = args.work_dir.resolve()
    datasets = prepare_datasets(["plates_dev", "plates_ro"], SHARED_DATA, work_dir)
    folders = {f"{name} {split}": datasets[name][split] for name in ("plates_dev", "plates_ro")
               for split in ("test", "train")}
    sizes = {name: len(east_eval.list_images(folder)) for name, folder in folders.items()}
    checkouts = {"this": REPO_ROOT} | ({"variant": args.variant.resolve()} if args.variant is not None else {})
    results = {label: {seed: seed_run(checkout, seed, folders, work_dir) for seed in args.seeds}
               for label, checkout in checkouts.items()}
    print(format_table(results, sizes))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
