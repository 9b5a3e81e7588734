"""Check icdar.py's Task 4.1 evaluation against the competition's own script on random submissions.

    python bench/compare_icdar_official.py --reference_repo PATH [--trials 30] [--seed 0] [--json]

PATH is a checkout holding the official ``script.py`` and ``rrc_evaluation_funcs.py``
(at its root or under ``evaluate/``, as in SakuraRiven/EAST). It is read from
there and never copied into this project.

Each trial builds a ground-truth zip (images drawn from the real ICDAR 2015 test
ground truth when ``--gt_zip`` exists, plus synthetic images: empty ones, ``###``
regions, crowded ones) and a submission zip (jittered copies, splits, merges,
duplicates, boxes on don't-care regions, random boxes, empty and missing files),
scores both with the official script and with icdar.py, and reports the largest
absolute difference over the overall and every per-image precision, recall and
hmean. All quads are clockwise integer quads, the only kind the official
script accepts.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import shapely

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import icdar  # noqa: E402

DEFAULT_GT_ZIP = REPO_ROOT.parent / "shared" / "data" / "icdar_real" / "icdar2015_test_gt_all.zip"
IMAGE_W, IMAGE_H = 1280, 720


def load_official(reference_repo: Path):
    """Import the official script module from a checkout."""
    for folder in (reference_repo / "evaluate", reference_repo):
        if (folder / "script.py").is_file() and (folder / "rrc_evaluation_funcs.py").is_file():
            sys.path.insert(0, str(folder))
            spec = importlib.util.spec_from_file_location("icdar_official_script", folder / "script.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"error: {reference_repo} holds no script.py + rrc_evaluation_funcs.py (nor under evaluate/)")


def is_clockwise_valid(quad: np.ndarray) -> bool:
    """The official script's clockwise test (edge sum <= 0, y down) plus a simple polygon."""
    x, y = quad[:, 0], quad[:, 1]
    edge_sum = np.sum((np.roll(x, -1) - x) * (np.roll(y, -1) + y))
    return edge_sum <= 0 and bool(shapely.is_valid(shapely.polygons(quad))) and shapely.area(
        shapely.polygons(quad)) > 0


def rotated_rect(rng: np.random.Generator, center, width, height, angle) -> np.ndarray:
    corners = np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return corners @ rotation.T + np.asarray(center)


def random_quad(rng: np.random.Generator) -> np.ndarray:
    while True:
        quad = np.rint(rotated_rect(rng, rng.uniform([0, 0], [IMAGE_W, IMAGE_H]), rng.uniform(10, 300),
                                    rng.uniform(8, 80), rng.uniform(-0.6, 0.6)))
        if is_clockwise_valid(quad):
            return quad


def jitter(rng: np.random.Generator, quad: np.ndarray, scale: float) -> np.ndarray | None:
    size = max(np.ptp(quad[:, 0]), np.ptp(quad[:, 1]), 4.0)
    for _ in range(10):
        moved = np.rint(quad + rng.normal(0, scale * size, quad.shape))
        if is_clockwise_valid(moved):
            return moved
    return None


def split(quad: np.ndarray) -> list[np.ndarray]:
    top_mid, bottom_mid = np.rint((quad[0] + quad[1]) / 2), np.rint((quad[3] + quad[2]) / 2)
    halves = [np.array([quad[0], top_mid, bottom_mid, quad[3]]), np.array([top_mid, quad[1], quad[2], bottom_mid])]
    return [half for half in halves if is_clockwise_valid(half)]


def merge(first: np.ndarray, second: np.ndarray) -> np.ndarray | None:
    points = np.concatenate([first, second])
    low, high = points.min(axis=0), points.max(axis=0)
    quad = np.array([[low[0], low[1]], [high[0], low[1]], [high[0], high[1]], [low[0], high[1]]])
    return quad if is_clockwise_valid(quad) else None


def synthetic_gt(rng: np.random.Generator) -> tuple[list[np.ndarray], list[str]]:
    kind = rng.integers(4)
    if kind == 0:
        return [], []
    count = int(rng.integers(1, 4 if kind == 1 else 25))
    quads, texts = [], []
    for _ in range(count):
        quads.append(random_quad(rng))
        texts.append("###" if rng.random() < 0.3 else rng.choice(["A", "word,with,commas", '"quoted"', "x y"]))
    if kind == 3 and quads:  # crowded: near-duplicates of one region
        for _ in range(int(rng.integers(1, 5))):
            moved = jitter(rng, quads[0], 0.05)
            if moved is not None:
                quads.append(moved)
                texts.append("dup")
    return quads, texts


def make_submission(rng: np.random.Generator, quads: list[np.ndarray]) -> list[np.ndarray]:
    detections: list[np.ndarray] = []
    for index, quad in enumerate(quads):
        draw = rng.random()
        if draw < 0.45:
            moved = jitter(rng, quad, rng.choice([0.01, 0.05, 0.15, 0.3]))
            if moved is not None:
                detections.append(moved)
        elif draw < 0.55:
            detections.extend(split(quad))
        elif draw < 0.65 and index + 1 < len(quads):
            merged = merge(quad, quads[index + 1])
            if merged is not None:
                detections.append(merged)
        elif draw < 0.72:
            detections.extend([quad, quad])
        elif draw < 0.78:
            detections.append(np.array([quad[0], quad[0], quad[0], quad[0]]))  # degenerate, area 0
    detections.extend(random_quad(rng) for _ in range(int(rng.poisson(1.0))))
    order = rng.permutation(len(detections))
    return [detections[i] for i in order]


def quad_line(quad: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in quad.reshape(-1))


def build_trial(rng: np.random.Generator, real_gt: dict[str, bytes], folder: Path) -> tuple[Path, Path, Path]:
    gt_entries: dict[str, str] = {}
    res_entries: dict[str, str] = {}
    real_names = sorted(real_gt)
    chosen = rng.choice(len(real_names), size=min(40, len(real_names)), replace=False) if real_names else []
    number = 10_000
    for index in chosen:
        name = real_names[index]
        text = icdar.decode_text(real_gt[name])
        annotation = icdar.parse_annotation_text(text, name)
        image_id = name[len("gt_img_"):-len(".txt")]
        gt_entries[f"gt_img_{image_id}.txt"] = real_gt[name].decode("utf-8", "replace")
        gt_quads = [quad for quad in annotation.quads.astype(np.float64)]
        if rng.random() < 0.9:
            res_entries[f"res_img_{image_id}.txt"] = "\n".join(quad_line(q) for q in make_submission(rng, gt_quads))
    for _ in range(int(rng.integers(5, 30))):
        number += 1
        quads, texts = synthetic_gt(rng)
        newline = "\r\n" if rng.random() < 0.5 else "\n"
        bom = "\ufeff" if rng.random() < 0.5 else ""
        gt_entries[f"gt_img_{number}.txt"] = bom + newline.join(
            f"{quad_line(q)},{t}" for q, t in zip(quads, texts))
        if rng.random() < 0.85:
            res_entries[f"res_img_{number}.txt"] = "\n".join(quad_line(q) for q in make_submission(rng, quads))
    # The Python 3 port of rrc_evaluation_funcs.decode_utf8 fails on a BOM (bytes.replace
    # with a str), so the official script gets the same files without it; icdar.py gets the BOMs.
    no_bom = {name: text.removeprefix("\ufeff") for name, text in gt_entries.items()}
    gt_zip, gt_zip_no_bom, res_zip = folder / "gt.zip", folder / "gt_no_bom.zip", folder / "res.zip"
    for path, entries in ((gt_zip, gt_entries), (gt_zip_no_bom, no_bom), (res_zip, res_entries)):
        with zipfile.ZipFile(path, "w") as archive:
            for name, text in entries.items():
                archive.writestr(name, text.encode("utf-8"))
    return gt_zip, gt_zip_no_bom, res_zip


def compare(official, gt_zip: Path, gt_zip_no_bom: Path, res_zip: Path) -> tuple[float, dict, dict]:
    params = official.default_evaluation_params()
    official.validate_data(str(gt_zip_no_bom), str(res_zip), params)
    reference = official.evaluate_method(str(gt_zip_no_bom), str(res_zip), params)
    ours = icdar.evaluate_paths(gt_zip, res_zip)
    differences = [abs(reference["method"][key] - getattr(ours, key)) for key in ("precision", "recall", "hmean")]
    for image_id, sample in reference["per_sample"].items():
        mine = ours.per_image[f"img_{image_id}"]
        differences += [abs(sample[key] - getattr(mine, key)) for key in ("precision", "recall", "hmean")]
    if len(reference["per_sample"]) != ours.images:
        differences.append(float("inf"))
    return max(differences), reference["method"], ours.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference_repo", required=True, type=Path,
                        help="checkout with the official script.py and rrc_evaluation_funcs.py")
    parser.add_argument("--gt_zip", type=Path, default=DEFAULT_GT_ZIP,
                        help="real ICDAR 2015 ground truth to draw images from (optional)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args()
    logging.getLogger("icdar").setLevel(logging.ERROR)  # degenerate test boxes are expected here
    official = load_official(args.reference_repo)
    real_gt: dict[str, bytes] = {}
    if args.gt_zip.is_file():
        with zipfile.ZipFile(args.gt_zip) as archive:
            real_gt = {name: archive.read(name) for name in archive.namelist() if name.endswith(".txt")}
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    images = 0
    with tempfile.TemporaryDirectory() as temp:
        for trial in range(args.trials):
            folder = Path(temp) / f"trial{trial}"
            folder.mkdir()
            difference, reference, ours = compare(official, *build_trial(rng, real_gt, folder))
            worst = max(worst, difference)
            images += ours["images"]
            print(f"trial {trial:3d}: images {ours['images']:3d}  official P {reference['precision']:.4f} "
                  f"R {reference['recall']:.4f} H {reference['hmean']:.4f}  icdar.py P {ours['precision']:.4f} "
                  f"R {ours['recall']:.4f} H {ours['hmean']:.4f}  max |diff| {difference:.2e}")
    passed = worst < 1e-4
    print(f"{args.trials} trials, {images} images: max abs difference {worst:.3e} "
          f"({'PASS' if passed else 'FAIL'}, limit 1e-4)")
    if args.json:
        print(json.dumps({"trials": args.trials, "images": images, "max_abs_difference": worst, "passed": passed}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
