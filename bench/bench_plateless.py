"""False boxes on real photos with no plate in them: one look against the zoom looks, in one run.

    python bench/bench_plateless.py [--model NAME=DIR ...] [--looks 2 --looks 2,3,4 ...] [--crops] [--json]

eval.py looks at a photo that gives no box again at larger sides (``--zoom_when_empty``, default 2,3,4
at the scale a checkpoint records). On a photo with a plate that finds the plate the first look missed;
on a photo with none, every further look can only add false boxes. This bench measures that cost on
real photos without plates:

  plates_dev_band  each of plates_dev's 222 photos cut to the taller full-width band above or below its
                   annotated plates (a margin of one plate height away from them, at least
                   MIN_BAND_SHARE of the photo tall): the car's rear window, roof, lamps and bumper,
                   the road, other cars, signs. plates_dev annotates one plate a photo, so a band can
                   still hold another car's plate: every box this bench reports is a candidate false
                   box, to be judged by eye (``--crops`` writes each for that).
  icdar_text       ICDAR 2015's real scene-text photos in ../shared/data/icdar_real (train/ and test/):
                   shop signs, notices and street names, text that is not a plate.

For each model and each ``--looks`` setting (eval.py's ``--zoom_when_empty``; ``1`` = one look at the
recorded scale) it prints how many photos get any box, and the ratio to the one-look figure. Every
evaluation is eval.py run as a user runs it (the recorded scale, core filter and mirror), cached under
``--work_dir`` by model, setting and the inference code.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import eval as east_eval  # noqa: E402
import icdar  # noqa: E402
from bench_quality import SHARED_DATA, inference_code_key, model_key, run_cli, settings_key  # noqa: E402

DEFAULT_WORK_DIR = REPO_ROOT / "data" / "bench_plateless"  # git-ignored
DEFAULT_MODEL = REPO_ROOT / "checkpoints" / "demo" / "plates"
DEFAULT_LOOKS = ("1", "2", "2,3,4")
MIN_BAND_SHARE = 0.3  # a band shorter than this share of the photo's height is not used


def plate_free_band(image_hw: tuple[int, int], quads: np.ndarray) -> tuple[int, int] | None:
    """The taller full-width band of rows away from every plate, or None when neither is tall enough.

    Args:
        image_hw: (height, width) of the photo in px.
        quads: float (K, 4, 2) plate corners (x, y) in px, K >= 1.
    Returns:
        (first row, end row) in px, end exclusive: rows above the plates' top or below their bottom,
        at least one plate height (the tallest) away from them and MIN_BAND_SHARE of the height tall.
    """
    height = image_hw[0]
    ys = quads[..., 1]
    margin = float((ys.max(axis=1) - ys.min(axis=1)).max())
    above = (0, int(np.floor(ys.min() - margin)))
    below = (int(np.ceil(ys.max() + margin)), height)
    band = max(above, below, key=lambda rows: rows[1] - rows[0])
    return band if band[1] - band[0] >= MIN_BAND_SHARE * height else None


def write_plate_dev_bands(images_dir: Path, out_dir: Path) -> int:
    """Writes each plates_dev photo's plate-free band as <stem>.png in out_dir (once); returns the count."""
    done = out_dir / "bands.json"
    if done.is_file():
        return json.loads(done.read_text())["bands"]
    out_dir.mkdir(parents=True, exist_ok=True)
    ground_truth = icdar.load_ground_truth(images_dir)
    images = {path.stem: path for path in east_eval.list_images(images_dir)}
    written = 0
    for stem, annotation in sorted(ground_truth.items()):
        image = cv2.imread(str(images[stem])) if stem in images else None
        band = None if image is None or len(annotation.quads) == 0 else plate_free_band(image.shape[:2], annotation.quads)
        if band is not None:
            cv2.imwrite(str(out_dir / f"{stem}.png"), image[band[0]:band[1]])  # PNG: the photo's own pixels
            written += 1
    done.write_text(json.dumps({"bands": written, "photos": len(ground_truth)}) + "\n")
    return written


def photo_sets(shared: Path, work_dir: Path) -> dict[str, list[Path]]:
    """Photo set name -> folders eval.py reads (each a folder of images with no plate)."""
    bands = work_dir / "plates_dev_band"
    write_plate_dev_bands(shared / "plates_dev" / "images", bands)
    return {"plates_dev_band": [bands],
            "icdar_text": [shared / "icdar_real" / "train", shared / "icdar_real" / "test"]}


def boxes_per_photo(model: Path, folder: Path, looks: str, out_dir: Path) -> dict[str, tuple[int, Path]]:
    """eval.py on folder with ``--zoom_when_empty looks`` (cached in out_dir);
    image path -> (box count, its result file)."""
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        run_cli(["eval.py", f"--test_data_path={folder}", f"--model_path={model}", f"--output_dir={out_dir}",
                 f"--zoom_when_empty={looks}", "--nowrite_images"])
    summary = json.loads(summary_path.read_text())
    return {entry["image"]: (entry["boxes"], out_dir / Path(entry["result_file"]).name)
            for entry in summary["per_image"]}


def measure(models: dict[str, Path], sets: dict[str, list[Path]], looks_settings: list[str],
            work_dir: Path) -> list[dict]:
    """One row per (model, photo set, looks): photos with any box and boxes in all."""
    code = inference_code_key()
    rows = []
    for model_name, model in models.items():
        for set_name, folders in sets.items():
            for looks in looks_settings:
                counts: dict[str, tuple[int, Path]] = {}
                for folder in folders:
                    key = settings_key([model_key(model), str(folder.resolve()), looks, code])
                    counts |= boxes_per_photo(model, folder, looks, work_dir / "runs" / key)
                rows.append({"model": model_name, "photos": set_name, "looks": looks, "images": len(counts),
                             "with_box": sum(count > 0 for count, _ in counts.values()),
                             "boxes": sum(count for count, _ in counts.values()),
                             "photos_with_box": sorted((path, str(result)) for path, (count, result) in counts.items()
                                                       if count > 0)})
    return rows


def print_table(rows: list[dict]) -> None:
    """The rows, with each setting's photos-with-a-box as a ratio of the same model's one-look figure."""
    one_look = {(row["model"], row["photos"]): row["with_box"] for row in rows if row["looks"] == "1"}
    header = f"{'model':12s} {'photos':16s} {'looks':8s} {'with a box':>12s} {'boxes':>6s} {'vs 1 look':>10s}"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        reference = one_look.get((row["model"], row["photos"]))
        ratio = f"{row['with_box'] / reference:.2f}" if reference else "-"
        print(f"{row['model']:12s} {row['photos']:16s} {row['looks']:8s} "
              f"{row['with_box']:>5d}/{row['images']:<6d} {row['boxes']:>6d} {ratio:>10s}")


def write_crops(rows: list[dict], work_dir: Path) -> None:
    """Each photo that got a box, with its boxes drawn in red, as <model>_<looks>_<stem>.jpg, to judge by eye."""
    out = work_dir / "crops"
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        for path, result_file in row["photos_with_box"]:
            stem = Path(path).stem
            image = cv2.imread(path)
            quads = icdar.read_detection_file(result_file)
            cv2.polylines(image, np.round(quads).astype(np.int32), isClosed=True, color=(0, 0, 255), thickness=3)
            cv2.imwrite(str(out / f"{row['model']}_{row['looks'].replace(',', '-')}_{stem}.jpg"), image)
    print(f"photos with a box, boxes drawn: {out}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                        help=f"a checkpoint folder to measure (repeatable; default demo={DEFAULT_MODEL})")
    parser.add_argument("--looks", action="append", default=[],
                        help="an eval.py --zoom_when_empty value (repeatable; default 1, 2 and 2,3,4); "
                             "1 is always measured, as the reference")
    parser.add_argument("--shared_data", type=Path, default=SHARED_DATA, help="folder holding the data sets")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR, help="bands, evaluations (the cache)")
    parser.add_argument("--crops", action="store_true", help="write every photo that got a box, its boxes drawn, to judge by eye")
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    models = dict(item.split("=", 1) for item in args.model) or {"demo": str(DEFAULT_MODEL)}
    models = {name: Path(folder) for name, folder in models.items()}
    looks = list(dict.fromkeys(["1", *(args.looks or DEFAULT_LOOKS)]))
    for required in (args.shared_data / "plates_dev" / "images", args.shared_data / "icdar_real"):
        if not required.is_dir():
            print(f"bench_plateless: {required} is missing; pass --shared_data DIR", file=sys.stderr)
            return 2
    rows = measure(models, photo_sets(args.shared_data, args.work_dir), looks, args.work_dir)
    print_table(rows)
    if args.crops:
        write_crops(rows, args.work_dir)
    if args.json:
        print(json.dumps([{key: value for key, value in row.items() if key != "photos_with_box"} for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
