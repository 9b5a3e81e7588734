"""Which boxes should a later zoom look keep? Every look recorded once, acceptance rules scored side by side.

    python bench/bench_zoom_rule.py --model demo=DIR [--model ft_dev=DIR ...] [--split train] [--json]

eval.py looks at a photo that gives no box again at 2, 3 and 4 times the recorded side (``--zoom_when_empty``)
and keeps the first look with a box. On photos with a plate that finds plates the first look was too coarse
for; on photos with none, every box a later look finds is false (bench_plateless.py). This bench asks
whether a later look should clear a stricter bar than the first, and which.

For each model it runs, once, on every photo of a split: the first look (the recorded side, mirror and
core filter) and, where that keeps no box or several, every later look, with the core filter off, keeping
each box's mean score and core score (cached under ``--work_dir``). Each rule below is then applied to the
recorded boxes as ``postprocess.Detector`` would (a later look whose input would not grow is skipped; the
first look with a kept box wins), so a rule costs no network run. Photo sets of the split:

  plates_dev, plates_ro   the bench_quality splits (one photo set each): images all correct
                          (ICDAR 2015 Task 4.1, the annotations as given)
  plates_dev_band         the bench_plateless band of each of the split's plates_dev photos: photos with
                          any box, each a false one (or another car's plate)

``--split train`` (the default) holds the photos to choose a rule on; ``--split test`` the photos to
confirm it on (bench_quality's and bench_plateless's photos). The reference row is ``ladder``, eval.py
before the confirmation check (``--zoom_confirm_iou 0``); ``eval.py: confirmed`` is eval.py's default; each
row prints its difference from the reference.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import eval as east_eval  # noqa: E402
import icdar  # noqa: E402
import postprocess  # noqa: E402
from bench_plateless import write_plate_dev_bands  # noqa: E402
from bench_quality import SHARED_DATA, inference_code_key, model_key, prepare_datasets, settings_key  # noqa: E402
from geometry import core_mean_scores  # noqa: E402

DEFAULT_WORK_DIR = REPO_ROOT / "data" / "bench_zoom_rule"  # git-ignored
BAND_SET = "plates_dev_band"
RECORD_VERSION = 2  # part of the recorded looks' cache key: bump it when record_photo records other looks


@dataclasses.dataclass(frozen=True)
class LaterLookRule:
    """What a later look (2x, 3x, 4x) keeps; the first look always keeps core > the recorded core_thresh.

    Attributes:
        core: a box's core must score above it (None: the first look's core_thresh, as eval.py does).
        max_first_height: a box's height in px at the first look's scale must be under it (None: any);
            a later look is there for plates too small for the first, so a larger box is one the first
            look saw and did not take.
        max_aspect: a box's width over height must be under it (None: any); the longest plates (EU, one
            row) are under 5:1, a camera's date stamp or a line of sign text is longer.
        looks: how many later looks at most (None: all of them).
        confirm_iou: a box must overlap a box of another look (any of them, before any core filter) at an IoU
            at or above it (None: no check); a plate's box is much the same at every scale that sees it.
        prune_only: with confirm_iou, a look whose boxes none is confirmed keeps them all (the check then
            only drops the unconfirmed boxes beside a confirmed one).
        confirm_from: "all" the other looks, or "neighbours": the look before and the look after it.
        prune_first: the check (prune_only or not) also applies to the first look's boxes when it keeps
            more than one, confirmed by the next look (run for that alone).
    """

    core: float | None = None
    max_first_height: float | None = None
    max_aspect: float | None = None
    looks: int | None = None
    confirm_iou: float | None = None
    prune_only: bool = False
    confirm_from: str = "all"
    prune_first: bool = False


EVAL_RULE = "eval.py: confirmed"  # what eval.py does (postprocess.ZOOM_CONFIRM_IOU)
RULES = {
    "ladder": LaterLookRule(),
    EVAL_RULE: LaterLookRule(confirm_iou=postprocess.ZOOM_CONFIRM_IOU, prune_only=True, confirm_from="neighbours"),
    "2x only": LaterLookRule(looks=1),
    **{f"core {value}": LaterLookRule(core=value) for value in (0.8, 0.85, 0.9, 0.95)},
    **{f"height<{value}": LaterLookRule(max_first_height=value) for value in (6, 8, 10, 12, 16)},
    **{f"aspect<{value}": LaterLookRule(max_aspect=value) for value in (5, 6, 8)},
    **{f"core 0.8, aspect<{value}": LaterLookRule(core=0.8, max_aspect=value) for value in (5, 6)},
    **{f"confirmed iou {value}": LaterLookRule(confirm_iou=value) for value in (0.3, 0.5, 0.6, 0.7, 0.8)},
    **{f"core {value}, confirmed 0.5": LaterLookRule(core=value, confirm_iou=0.5) for value in (0.8, 0.85, 0.9)},
    **{f"pruned iou {value}": LaterLookRule(confirm_iou=value, prune_only=True) for value in (0.5, 0.6, 0.7, 0.8)},
    **{f"pruned iou {value}, neighbours": LaterLookRule(confirm_iou=value, prune_only=True, confirm_from="neighbours")
       for value in (0.6, 0.7)},
    **{f"pruned iou {value}, first too": LaterLookRule(confirm_iou=value, prune_only=True, confirm_from="neighbours",
                                                       prune_first=True) for value in (0.6, 0.7, 0.8)},
}


# --------------------------------------------------------------------------- recording


def record_look(detector: postprocess.Detector, image_rgb: np.ndarray, side: int) -> dict:
    """One look at ``side`` with no core filter: input (h, w), output quads (M, 4, 2) in original px, each
    box's mean score and core mean score (postprocess.detect_boxes' two filters)."""
    options = detector.options
    resized, ratios = postprocess.resize_for_inference(image_rgb, max_side_len=side)
    score_maps, geo_maps = detector._network(resized[None])
    boxes = postprocess.detect_boxes(score_maps[0], geo_maps[0], score_map_thresh=options.score_map_thresh,
                                     box_thresh=options.box_thresh, core_thresh=0.0, nms_thres=options.nms_thres)
    cores = core_mean_scores(score_maps[0][..., 0], boxes[:, :8].reshape(-1, 4, 2)) if len(boxes) else np.zeros(0)
    quads, scores = postprocess.to_output_quads(boxes, *ratios, image_hw=image_rgb.shape[:2])
    with_cores = np.concatenate([boxes[:, :8], np.reshape(cores, (-1, 1))], axis=1) if len(boxes) else boxes
    _, kept_cores = postprocess.to_output_quads(with_cores, *ratios, image_hw=image_rgb.shape[:2])
    return {"input_hw": list(resized.shape[:2]), "quads": quads.tolist(), "scores": scores.tolist(),
            "cores": kept_cores.tolist()}


def record_photo(detector: postprocess.Detector, image_rgb: np.ndarray, first_core: float) -> dict:
    """The first look and, where it keeps no box or several (core > first_core), every later look
    (options.zoom_sides); ``detector`` runs with no core filter."""
    looks = [record_look(detector, image_rgb, detector.options.max_side_len)]
    if len(_kept(looks[0], first_core)) != 1:
        looks += [record_look(detector, image_rgb, side) for side in detector.options.zoom_sides]
    return {"image_hw": list(image_rgb.shape[:2]), "first_core": first_core, "looks": looks}


def record_folder(model: Path, photos: list[Path], cache: Path) -> dict[str, dict]:
    """Image stem -> record_photo for each photo (cached in ``cache``, a JSON file)."""
    if cache.is_file():
        return json.loads(cache.read_text())
    predictor, info = east_eval.load_predictor(str(model))
    options = postprocess.settle_for_model(postprocess.DetectOptions(), None, None, None, None, info)
    detector = postprocess.Detector(predictor, dataclasses.replace(options, core_thresh=0.0))
    records = {}
    for path in photos:
        image_rgb = east_eval.read_image_rgb(path)
        if image_rgb is None:
            raise ValueError(f"{path}: cannot be decoded as an image")
        records[path.stem] = record_photo(detector, image_rgb, options.core_thresh)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(records))
    return records


# --------------------------------------------------------------------------- rules


def _kept(look: dict, core: float, rule: LaterLookRule = LaterLookRule(), first_ratio: float = 1.0) -> np.ndarray:
    """The quads of one look a rule keeps: core > ``core`` (no filter at 0, as detect_boxes) and the rule's
    size and shape limits (height: the shorter pair of opposite edges' mean, px; width: the longer's)."""
    quads = np.asarray(look["quads"], np.float64).reshape(-1, 4, 2)
    keep = np.ones(len(quads), bool)
    if core > 0:
        keep &= np.asarray(look["cores"]) > core
    if len(quads):
        edges = np.linalg.norm(quads - np.roll(quads, -1, axis=1), axis=-1)
        pairs = np.stack([edges[:, 0] + edges[:, 2], edges[:, 1] + edges[:, 3]]) / 2
        height, width = pairs.min(axis=0), pairs.max(axis=0)
        if rule.max_first_height is not None:
            keep &= height * first_ratio < rule.max_first_height
        if rule.max_aspect is not None:
            keep &= width < rule.max_aspect * height
    return quads[keep]


def apply_rule(record: dict, rule: LaterLookRule) -> np.ndarray:
    """The quads eval.py would output for one photo under ``rule`` (postprocess.Detector._zoom_where_empty)."""
    run = [record["looks"][0]]  # the looks eval.py runs: a look whose input would not grow is skipped
    for look in record["looks"][1:]:
        if look["input_hw"] != run[-1]["input_hw"]:
            run.append(look)
    quads = _kept(run[0], record["first_core"])
    if len(quads):
        return _confirmed(quads, run, 0, rule) if rule.prune_first and len(quads) > 1 and len(run) > 1 else quads
    first_ratio = run[0]["input_hw"][0] / record["image_hw"][0]
    core = record["first_core"] if rule.core is None else max(rule.core, record["first_core"])
    for index, look in enumerate(run[1:][:rule.looks], start=1):
        kept = _kept(look, core, rule, first_ratio)
        if rule.confirm_iou is not None and len(kept):
            kept = _confirmed(kept, run, index, rule)
        if len(kept):
            return kept
    return quads


def _confirmed(kept: np.ndarray, run: list[dict], index: int, rule: LaterLookRule) -> np.ndarray:
    """The boxes of look ``index`` another look also found (rule.confirm_iou, confirm_from, prune_only;
    postprocess.confirmed_by, as eval.py checks them)."""
    if rule.confirm_from == "all":
        sources = run[:index] + run[index + 1:]
    else:
        sources = run[max(index - 1, 0):index] + run[index + 1:index + 2]
    others = np.array([quad for other in sources for quad in other["quads"]], np.float64).reshape(-1, 4, 2)
    confirmed = postprocess.confirmed_by(kept, others, rule.confirm_iou)
    return kept if rule.prune_only and not confirmed.any() else kept[confirmed]


def score_set(records: dict[str, dict], ground_truth: dict[str, icdar.Annotation] | None, rule: LaterLookRule) -> int:
    """Images all correct under ``rule`` (with ground truth), else photos with any box."""
    count = 0
    for stem, record in records.items():
        quads = apply_rule(record, rule)
        if ground_truth is None:
            count += bool(len(quads))
        else:
            annotation = ground_truth[stem]
            count += icdar.evaluate_image(annotation.quads, annotation.dont_care, quads).all_correct
    return count


# --------------------------------------------------------------------------- photo sets


def photo_sets(split: str, shared: Path, work_dir: Path) -> dict[str, tuple[list[Path], dict | None]]:
    """Set name -> (photos, ground truth or None for a plate-free set) for one split."""
    folders = prepare_datasets(["plates_dev", "plates_ro"], shared, work_dir)
    sets = {}
    for name, split_folders in folders.items():
        folder = split_folders[split]
        sets[name] = (east_eval.list_images(folder), icdar.load_ground_truth(folder))
    bands = work_dir / f"bands_{split}"
    write_plate_dev_bands(folders["plates_dev"][split], bands)
    sets[BAND_SET] = (sorted(bands.glob("*.png")), None)
    return sets


# --------------------------------------------------------------------------- report


def measure(models: dict[str, Path], sets: dict, split: str, work_dir: Path) -> list[dict]:
    """One row per (model, rule) with each set's count."""
    code = inference_code_key()
    rows = []
    for model_name, model in models.items():
        records = {name: record_folder(model, photos, work_dir / "looks" /
                                       f"{settings_key([model_key(model), name, split, code, RECORD_VERSION])}.json")
                   for name, (photos, _) in sets.items()}
        for rule_name, rule in RULES.items():
            counts = {name: score_set(records[name], truth, rule) for name, (_, truth) in sets.items()}
            rows.append({"model": model_name, "rule": rule_name, **counts,
                         "images": {name: len(photos) for name, (photos, _) in sets.items()}})
    return rows


def print_table(rows: list[dict], set_names: list[str]) -> None:
    """Each row's counts and their difference from the same model's ``ladder`` row."""
    reference = {row["model"]: row for row in rows if row["rule"] == "ladder"}
    header = f"{'model':10s} {'rule':24s} " + " ".join(f"{name:>22s}" for name in set_names)
    print(header + "\n" + "-" * len(header))
    for row in rows:
        cells = []
        for name in set_names:
            delta = row[name] - reference[row["model"]][name]
            cells.append(f"{row[name]:>4d}/{row['images'][name]:<4d} ({delta:+d})".rjust(22))
        print(f"{row['model']:10s} {row['rule']:24s} " + " ".join(cells))
    print(f"{', '.join(set_names[:-1])}: images all correct; {set_names[-1]}: photos with a box (fewer is better)")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR", required=True,
                        help="a checkpoint folder (repeatable)")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="train: the photos to choose a rule on; test: to confirm it")
    parser.add_argument("--shared_data", type=Path, default=SHARED_DATA, help="folder holding the data sets")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="the plates_dev split, bands, recorded looks (the cache)")
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    models = {name: Path(folder) for name, folder in (item.split("=", 1) for item in args.model)}
    for required in (args.shared_data / "plates_dev" / "images", args.shared_data / "plates_ro"):
        if not required.is_dir():
            print(f"bench_zoom_rule: {required} is missing; pass --shared_data DIR", file=sys.stderr)
            return 2
    sets = photo_sets(args.split, args.shared_data, args.work_dir)
    rows = measure(models, sets, args.split, args.work_dir)
    print_table(rows, list(sets))
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
