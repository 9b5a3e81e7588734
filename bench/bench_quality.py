"""Detection quality on real plate photos: the demo model, the fine-tuned model and a peer, in one run.

    python bench/bench_quality.py [--demo_model DIR] [--finetuned_model plates_dev=DIR ...] [--skip_finetune]
                                  [--rehearsal_share 0.5] [--cross]
                                  [--datasets plates_dev,plates_ro] [--no_peer] [--json]

Data (read from ../shared/data, never copied into the project):
  plates_dev  222 US photos, one plate each; split 80/20 by ``data_preprocessor.py split`` (its default
              seed) into ``--work_dir``: 178 to fine-tune on, 44 to score.
  plates_ro   Romanian dashcam frames, already split by video: fine-tune on train/ (427), score on test/
              (107). Never re-split at random (near-duplicate frames would leak).

Models, every one trained and scored through the project's own command lines, so the figures are
what a user gets:
  demo        the ``make demo`` model (``python demo.py``: synthetic plates only); ``--demo_model DIR``
              reuses one, otherwise ``demo.py --root <work_dir>/demo-<key>`` trains it (cached).
  finetuned   ``python demo.py --finetune_train <train> --finetune_test <test> --base_model <demo>``
              (the bring-your-own-photos command, its fixed step budget); cached per
              (demo model, data set, FinetuneConfig) under ``<work_dir>/finetune-<dataset>-<key>``;
              ``--finetuned_model NAME=DIR`` reuses one.
  rehearsal   (``--rehearsal_share S``) the same command with ``--rehearsal_share S``: the demo's
              synthetic scenes (those the bench's demo model trained on) mixed into the photos.
  <name>-x    (``--cross``) a model fine-tuned on the OTHER data set, scored on this one: real photos
              of a country it never trained on, the case "photos nobody here trains on" stands for.
  peer        PP-OCRv4's text detector (DB, MobileNetV3) from the ``rapidocr-onnxruntime`` wheel, a
              general text detector that was never trained on plates: it is the bar any plate model
              should clear. A bench-only dependency, never a runtime one; install it without its
              dependencies so that it does not pull opencv-python beside opencv-python-headless (the
              others, onnxruntime pyclipper shapely PyYAML six Pillow tqdm, are small):

                  pip install --no-deps rapidocr-onnxruntime==1.4.4
                  pip install onnxruntime pyclipper shapely PyYAML six Pillow tqdm

Each model is scored by ``eval.py --gt_path`` (ICDAR 2015 Task 4.1, summary.json) at
``--max_side_len`` 256, 512, 1024, at eval.py's defaults (the scale and the --core_thresh the checkpoint
records), with --core_thresh 0.75 and 0 (``core``, ``nocore``), with one further look at twice the
scale only (``zoom2``, eval.py's default before the looks at 3 and 4 times), at the demo's eval settings
and at the fine-tune command's. The peer's quads are written as result files and scored by ``icdar.py
evaluate``, the same scorer; its image size is set the same way (longest side = N; "defaults" is
RapidOCR's own: shortest side 736). ``ours / peer`` is the ratio of images all correct at the same
setting. Evaluations are cached by model, setting and the inference code (INFERENCE_SOURCES), so a
rerun only prints.

Per image, the failure breakdown classifies why an image is not all correct, from the IoU of the best
detection with each plate: ``missed`` (a plate with best IoU < 0.1), ``partial`` (best IoU in
[0.1, 0.5): the box is too small, too large or shifted; ``small`` counts those smaller than the plate),
``extra`` (every plate matched but false detections remain), ``other`` (the ICDAR matching refused a
pair that overlaps at >= 0.5, e.g. one box over two plates).

plates_ro's ground truth leaves out many plates of other cars (mostly small or far), and a model that
finds them is scored as wrong there. ``bench/plates_ro_test_unannotated.tsv`` lists those that any of our
models found, judged by eye (its header says how it was made); ``bench/plates_dev_test_unannotated.tsv``
the three that plates_dev's test photos leave out (another car's plate behind the annotated one; any
model's, the peer's included). ``ok+dc`` is images all correct when
detections on them are ignored, as ICDAR 2015 ignores detections on don't-care text. ``all ok`` stays
the figure on the ground truth as given.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from shapely.geometry import Polygon

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import demo  # noqa: E402  (its settings are the one source of the demo and fine-tune figures)
import data_preprocessor  # noqa: E402
import icdar  # noqa: E402
import postprocess  # noqa: E402

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_WORK_DIR = REPO_ROOT / "data" / "bench_quality"  # git-ignored
MAX_SIDE_LENS = (256, 512, 1024)
MISSED_IOU = 0.1
MATCH_IOU = 0.5  # icdar.py's Task 4.1 threshold
# Plates a data set's ground truth leaves out, scored a second time as don't-care regions ("ok+dc").
UNANNOTATED_PLATES = {"plates_dev": REPO_ROOT / "bench" / "plates_dev_test_unannotated.tsv",
                      "plates_ro": REPO_ROOT / "bench" / "plates_ro_test_unannotated.tsv"}
DONT_CARE_PAD = 0.2  # each listed box grows by this fraction of its width / height on every side
# How the peer resizes for each of our settings: longest side = N, or RapidOCR 1.4.4's own default
# (config.yaml: shortest side 736).
PEER_RESIZE = {str(n): {"limit_type": "max", "limit_side_len": n} for n in MAX_SIDE_LENS} | {
    "defaults": {"limit_type": "min", "limit_side_len": 736}}


def eval_settings() -> dict[str, dict]:
    """Setting name -> eval.py flags (none = eval.py's defaults)."""
    demo_config, finetune_config = demo.PROFILES["full"], demo.FINETUNE_PROFILES["full"]
    settings = {str(n): {"max_side_len": n} for n in MAX_SIDE_LENS}
    settings["defaults"] = {}
    settings["core"] = {"core_thresh": postprocess.SYNTHETIC_ONLY_CORE_THRESH}  # the defaults plus the core filter
    settings["nocore"] = {"core_thresh": 0.0}  # the defaults with EAST-tf2's filters only, whatever the model records
    settings["zoom2"] = {"zoom_when_empty": "2"}  # the defaults with one further look only, as before 8fc7284
    for name, config in (("demo", demo_config), ("finetune", finetune_config)):
        # A setting left None is eval.py's own (max_side_len: the scale the checkpoint records).
        settings[name] = {key: getattr(config, key) for key in ("max_side_len", "score_map_thresh", "box_thresh",
                                                               "nms_thres") if getattr(config, key) is not None}
    return settings


def peer_setting(setting_name: str) -> str:
    """The peer row an our-model row is compared with: the same longest side, else the peer's defaults
    (the demo's and the fine-tune's settings also change thresholds, which the peer does not have)."""
    return setting_name if setting_name in PEER_RESIZE else "defaults"


def run_cli(arguments: list[str], log_path: Path | None = None) -> str:
    """Runs ``python <arguments>`` from the repository root; returns stdout; raises with the tail on failure."""
    print("$ " + shlex.join(["python", *arguments]), flush=True)
    completed = subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, capture_output=True, text=True)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(completed.stdout + "\n--- stderr\n" + completed.stderr)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{arguments[0]} failed (exit {completed.returncode}):\n{tail}")
    return completed.stdout


def model_key(model_dir: Path) -> str:
    """Identifies a trained checkpoint folder by its path and the newest checkpoint's name and time."""
    latest = model_dir / "latest"
    if not latest.is_file():
        raise FileNotFoundError(f"{model_dir} holds no finished checkpoint ('latest' is missing)")
    stamp = f"{model_dir.resolve()}|{latest.read_text().strip()}|{latest.stat().st_mtime_ns}"
    return hashlib.sha1(stamp.encode()).hexdigest()[:10]


def settings_key(content: object) -> str:
    return hashlib.sha1(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:10]


# The code an evaluation runs: a change to any of them (a new eval default, a decoder fix) makes the cached
# evaluations stale, so it is part of their cache key.
INFERENCE_SOURCES = ("eval.py", "postprocess.py", "geometry.py", "locality_aware_nms.py", "network_io.py",
                     "model.py", "checkpoints.py", "inference_record.py", "exported_models.py", "icdar.py")


def inference_code_key() -> str:
    """A hash of INFERENCE_SOURCES' bytes."""
    digest = hashlib.sha1()
    for name in INFERENCE_SOURCES:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:10]


# --------------------------------------------------------------------------- data and models


def prepare_datasets(names: list[str], shared: Path, work_dir: Path) -> dict[str, dict[str, Path]]:
    """Data set name -> {"train": folder, "test": folder}; plates_dev is split once (default seed)."""
    datasets = {}
    for name in names:
        if name == "plates_dev":
            train, test = work_dir / "plates_dev" / "train", work_dir / "plates_dev" / "test"
            if not (test.is_dir() and any(test.glob("*.jpg"))):
                run_cli(["data_preprocessor.py", "split", f"--data_path={shared / 'plates_dev' / 'images'}",
                         f"--train_dir={train}", f"--test_dir={test}", "--overwrite"])
            datasets[name] = {"train": train, "test": test}
        elif name == "plates_ro":
            datasets[name] = {"train": shared / "plates_ro" / "train", "test": shared / "plates_ro" / "test"}
        else:
            raise ValueError(f"--datasets: unknown data set {name!r} (plates_dev, plates_ro)")
    return datasets


def demo_model(given: Path | None, work_dir: Path) -> tuple[Path, Path | None]:
    """The ``make demo`` model: the given folder, or one trained by ``demo.py`` under a cached root;
    returns (model, the synthetic training scenes it learned from, None when given)."""
    if given is not None:
        return given.resolve(), None
    root = work_dir / f"demo-{settings_key(demo.PROFILES['full'].train_settings() | demo.PROFILES['full'].data_settings())}"
    paths = demo.default_paths(root)
    if not (root / "bench_done").is_file():
        run_cli(["demo.py", f"--root={root}"], root / "demo.log")
        (root / "bench_done").write_text("demo.py finished\n")
    return paths.model, paths.train


def finetuned_model(dataset: str, folders: dict[str, Path], base: Path, work_dir: Path,
                    rehearsal: tuple[float, Path | None] | None = None) -> tuple[Path, float]:
    """Runs the bring-your-own-photos command on a data set's train/test (cached); returns (model, seconds).
    rehearsal: (share, scenes folder or None for demo.py's default) for ``--rehearsal_share``, or None."""
    content = [model_key(base), str(folders["train"].resolve()), demo.FINETUNE_PROFILES["full"].settings()]
    mixed = []
    if rehearsal is not None:
        content.append([rehearsal[0], str(rehearsal[1])])
        mixed = [f"--rehearsal_share={rehearsal[0]:g}"] + ([] if rehearsal[1] is None else
                                                           [f"--rehearsal_data={rehearsal[1]}"])
    root = work_dir / f"finetune-{dataset}-{settings_key(content)}"
    model = demo.finetune_paths(root).model
    if (root / "bench_done").is_file():
        return model, 0.0
    started = time.perf_counter()
    run_cli(["demo.py", f"--finetune_train={folders['train']}", f"--finetune_test={folders['test']}",
             f"--base_model={base}", f"--root={root}", *mixed], root / "finetune.log")
    seconds = time.perf_counter() - started
    (root / "bench_done").write_text(json.dumps({"seconds": seconds}) + "\n")
    return model, seconds


# --------------------------------------------------------------------------- scoring


def evaluate_ours(model: Path, test: Path, setting: dict, out_dir: Path) -> dict:
    """eval.py on test with setting's flags (cached in out_dir); returns summary.json's ``evaluation``."""
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        flags = [f"--{key}={value}" for key, value in setting.items()]
        run_cli(["eval.py", f"--test_data_path={test}", f"--model_path={model}", f"--output_dir={out_dir}",
                 f"--gt_path={test}", "--nowrite_images", *flags])
    summary = json.loads(summary_path.read_text())
    return summary["evaluation"] | {"seconds_per_image": summary["seconds"]["per_image"]}


def peer_detector(limit_type: str, limit_side_len: int):
    """PP-OCRv4's detector from rapidocr-onnxruntime, resizing as told; None when the wheel is absent."""
    try:
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
    except ImportError:
        return None
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    package = Path(rapidocr_onnxruntime.__file__).parent
    detector = TextDetector({"model_path": str(package / "models" / "ch_PP-OCRv4_det_infer.onnx"),
                         "limit_type": limit_type, "limit_side_len": limit_side_len,
                         "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "thresh": 0.3, "box_thresh": 0.5,
                         "max_candidates": 1000, "unclip_ratio": 1.6, "use_dilation": True,
                         "score_mode": "fast", "use_cuda": False, "use_dml": False,
                         "intra_op_num_threads": -1, "inter_op_num_threads": -1})
    # TextDetector honours limit_side_len only for limit_type "min"; for "max" it picks 960/1500/2000
    # by image size. Resize the way eval.py does instead: the longest side scaled down to limit_side_len.
    detector.get_preprocess = lambda longest_side: DetPreProcess(limit_side_len, limit_type, detector.mean,
                                                                 detector.std)
    return detector


def evaluate_peer(detector, test: Path, out_dir: Path) -> dict:
    """Writes the peer's quads as <stem>.txt for every test image, scores them with ``icdar.py evaluate``."""
    done = out_dir / "summary.json"
    if not done.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        images = sorted(path for path in test.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
        started = time.perf_counter()
        for image_path in images:
            quads, _ = detector(cv2.imread(str(image_path)))
            quads = np.zeros((0, 4, 2)) if quads is None or len(quads) == 0 else np.asarray(quads).reshape(-1, 4, 2)
            icdar.write_icdar_file(out_dir / f"{image_path.stem}.txt", quads)
        per_image = (time.perf_counter() - started) / max(len(images), 1)
        scores = json.loads(run_cli(["icdar.py", "evaluate", f"--gt_path={test}", f"--pred_path={out_dir}",
                                     "--json"]).strip().splitlines()[-1])
        done.write_text(json.dumps(scores | {"seconds_per_image": per_image}) + "\n")
    return json.loads(done.read_text())


def _iou(first: Polygon, second: Polygon) -> float:
    union = first.union(second).area
    return first.intersection(second).area / union if union > 0 else 0.0


def classify_image(gt_quads: np.ndarray, dont_care: np.ndarray, det_quads: np.ndarray, all_correct: bool) -> str:
    """correct | missed | partial-small | partial-large | extra | other (see the module docstring)."""
    if all_correct:
        return "correct"
    plates = [Polygon(quad).buffer(0) for quad in gt_quads[~dont_care]]
    boxes = [Polygon(quad).buffer(0) for quad in det_quads]
    worst = "extra"
    for plate in plates:
        ious = [_iou(plate, box) for box in boxes]
        best = int(np.argmax(ious)) if ious else -1
        if best < 0 or ious[best] < MISSED_IOU:
            return "missed"
        if ious[best] < MATCH_IOU:
            worst = "partial-small" if boxes[best].area < plate.area else "partial-large"
    if worst == "extra" and len(boxes) <= len(plates):
        return "other"
    return worst


def diagnose(test: Path, result_dir: Path) -> dict[str, int]:
    """Counts of classify_image over the test images (result files <stem>.txt in result_dir)."""
    ground_truth = icdar.load_ground_truth(test)
    detections = icdar.load_detections(result_dir, list(ground_truth))
    evaluation = icdar.evaluate(ground_truth, detections)
    counts: dict[str, int] = {}
    for stem, annotation in ground_truth.items():
        det_quads = detections.get(stem, np.zeros((0, 4, 2), np.float32))
        label = classify_image(annotation.quads, annotation.dont_care, det_quads,
                               evaluation.per_image[stem].all_correct)
        counts[label] = counts.get(label, 0) + 1
    return counts


def unannotated_plates(path: Path) -> dict[str, np.ndarray]:
    """image stem -> float32 (K, 4, 2) quads of the plates a UNANNOTATED_PLATES file lists (tab-separated
    stem, xmin, ymin, xmax, ymax in image px; ``#`` lines are comments), each padded by DONT_CARE_PAD."""
    boxes: dict[str, list] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            stem, *values = line.split("\t")
            xmin, ymin, xmax, ymax = (float(value) for value in values)
        except ValueError:
            raise ValueError(f"{path}:{number}: expected stem, xmin, ymin, xmax, ymax (tab-separated)") from None
        pad_x, pad_y = DONT_CARE_PAD * (xmax - xmin), DONT_CARE_PAD * (ymax - ymin)
        xmin, ymin, xmax, ymax = xmin - pad_x, ymin - pad_y, xmax + pad_x, ymax + pad_y
        boxes.setdefault(stem, []).append([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]])
    return {stem: np.asarray(quads, np.float32) for stem, quads in boxes.items()}


def all_correct_with_dont_care(test: Path, result_dir: Path, extra: dict[str, np.ndarray]) -> int:
    """Images all correct when detections on the ``extra`` regions (stem -> (K, 4, 2)) are ignored,
    ICDAR 2015's rule for don't-care text; the same scorer as ``all ok`` otherwise."""
    ground_truth = icdar.load_ground_truth(test)
    unknown = sorted(set(extra) - set(ground_truth))
    if unknown:
        raise ValueError(f"unannotated plates listed for images not in {test}: {', '.join(unknown[:5])}")
    for stem, quads in extra.items():
        annotation = ground_truth[stem]
        ground_truth[stem] = icdar.Annotation(np.concatenate([annotation.quads, quads]),
                                              np.concatenate([annotation.dont_care, np.ones(len(quads), bool)]))
    detections = icdar.load_detections(result_dir, list(ground_truth))
    return icdar.evaluate(ground_truth, detections).images_all_correct


def scored_row(dataset: str, model: str, setting: str, scores: dict, test: Path, result_dir: Path) -> dict:
    """One table row: the scores, the failure breakdown and, where the data set has a list of
    unannotated plates, images all correct with them as don't-care (``all_correct_dc``)."""
    row = {"dataset": dataset, "model": model, "setting": setting, **scores, "failures": diagnose(test, result_dir)}
    if dataset in UNANNOTATED_PLATES:
        extra = unannotated_plates(UNANNOTATED_PLATES[dataset])
        row["all_correct_dc"] = all_correct_with_dont_care(test, result_dir, extra)
    return row


# --------------------------------------------------------------------------- the run


def peer_rows(dataset: str, test: Path, work_dir: Path, setting_names: list[str]) -> list[dict]:
    """The peer's rows on one data set, one per PEER_RESIZE entry that the chosen settings compare with."""
    rows = []
    for name in dict.fromkeys(peer_setting(setting_name) for setting_name in setting_names):
        out_dir = work_dir / "eval" / "peer-ppocrv4" / dataset / settings_key(PEER_RESIZE[name])
        if not (out_dir / "summary.json").is_file():
            detector = peer_detector(**PEER_RESIZE[name])
            if detector is None:
                raise RuntimeError("the peer needs rapidocr-onnxruntime (see this script's docstring), "
                                   "or pass --no_peer")
            print(f"peer PP-OCRv4 det on {dataset}, {PEER_RESIZE[name]}", flush=True)
            evaluate_peer(detector, test, out_dir)
        rows.append(scored_row(dataset, "peer PP-OCRv4", name, evaluate_peer(None, test, out_dir), test, out_dir))
    return rows


def score_rows(models: dict[str, Path], dataset: str, test: Path, work_dir: Path, setting_names: list[str],
               peer: bool) -> list[dict]:
    """One row per (model, setting) on one data set, the peer's included, with the failure breakdown."""
    rows = []
    code_key = inference_code_key()
    for setting_name in setting_names:
        setting = eval_settings()[setting_name]
        for model_name, model in models.items():
            out_dir = (work_dir / "eval" / f"{model_name}-{model_key(model)}" / dataset
                       / settings_key([setting, code_key]))
            scores = evaluate_ours(model, test, setting, out_dir)
            rows.append(scored_row(dataset, model_name, setting_name, scores, test, out_dir))
    if peer:
        rows += peer_rows(dataset, test, work_dir, setting_names)
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[dict]) -> None:
    """ours / peer on images all correct, for the peer row at the same data set and setting."""
    peers = {(row["dataset"], row["setting"]): row for row in rows if row["model"].startswith("peer")}
    for row in rows:
        peer = peers.get((row["dataset"], peer_setting(row["setting"])))
        if peer is not None and not row["model"].startswith("peer"):
            row["ours_over_peer"] = (row["images_all_correct"] / peer["images_all_correct"]
                                     if peer["images_all_correct"] else None)


FAILURE_KINDS = ("missed", "partial-small", "partial-large", "extra", "other")


def plate_sizes_at(test: Path, max_side_lens=MAX_SIDE_LENS) -> dict[int, dict[str, float]]:
    """How large the test plates reach the network at each max_side_len: {N: {"width", "height",
    "width_p10", "height_p10"}}, medians and 10th percentiles in network input px (the score map has
    one cell per network_io.OUTPUT_STRIDE = 4 px). Width/height: the quad's longer top/bottom and
    left/right edges; images are scaled so their longer side is N (eval.py never upscales, so an
    image shorter than N keeps its size). Reads the folder as training would (data_preprocessor)."""
    widths, heights, long_sides = [], [], []
    for sample in data_preprocessor.load_dataset(test).samples:
        quads = sample.quads[~sample.dont_care].astype(np.float64)
        edges = np.linalg.norm(quads - np.roll(quads, -1, axis=1), axis=2)  # top, right, bottom, left
        long_side = max(sample.image_hw)
        widths += list(np.maximum(edges[:, 0], edges[:, 2]) / long_side)
        heights += list(np.maximum(edges[:, 1], edges[:, 3]) / long_side)
        long_sides += [long_side] * len(quads)
    sizes = {}
    for side in max_side_lens:
        scaled_side = np.minimum(side, long_sides)
        width, height = np.array(widths) * scaled_side, np.array(heights) * scaled_side
        sizes[side] = {"width": float(np.median(width)), "height": float(np.median(height)),
                       "width_p10": float(np.percentile(width, 10)), "height_p10": float(np.percentile(height, 10))}
    return sizes


def print_plate_sizes(sizes: dict[str, dict[int, dict[str, float]]]) -> None:
    print("\nplate size in the network input at each --max_side_len, median (10th percentile), px:")
    for dataset, by_side in sizes.items():
        cells = "   ".join(f"{side}: {size['width']:.0f}x{size['height']:.0f} ({size['width_p10']:.0f}x"
                           f"{size['height_p10']:.0f})" for side, size in by_side.items())
        print(f"{dataset:<11} {cells}")


def print_table(rows: list[dict]) -> None:
    header = (f"{'data set':<11} {'model':<14} {'setting':<9} {'prec':>5} {'rec':>5} {'hmean':>5} "
              f"{'all ok':>8} {'ok+dc':>5} {'ours/peer':>9} {'s/img':>6}  failures: " + " ".join(FAILURE_KINDS))
    print("\n" + header)
    print("-" * len(header))
    for row in rows:
        ratio = row.get("ours_over_peer")
        ratio_text = "" if "ours_over_peer" not in row else ("inf" if ratio is None else f"{ratio:.2f}")
        failures = " ".join(f"{row['failures'].get(kind, 0)}" for kind in FAILURE_KINDS)
        with_dont_care = str(row.get("all_correct_dc", ""))
        print(f"{row['dataset']:<11} {row['model']:<14} {row['setting']:<9} {row['precision']:>5.3f} "
              f"{row['recall']:>5.3f} {row['hmean']:>5.3f} {row['images_all_correct']:>3}/{row['images']:<4} "
              f"{with_dont_care:>5} {ratio_text:>9} {row['seconds_per_image']:>6.2f}  {failures}")


def fine_tunes(dataset: str, folders: dict[str, Path], base: Path, scenes: Path | None, work_dir: Path,
               args: argparse.Namespace, seconds: dict[str, float]) -> dict[str, Path]:
    """A data set's fine-tuned models by row name: "finetuned" (given or trained) and, with
    --rehearsal_share, "rehearsal"; the training seconds go into ``seconds``."""
    models = {}
    given = args.finetuned_model.get(dataset)
    if given is not None:
        models["finetuned"] = Path(given).resolve()
    else:
        models["finetuned"], seconds[f"fine-tune {dataset}"] = finetuned_model(dataset, folders, base, work_dir)
    if args.rehearsal_share:
        models["rehearsal"], seconds[f"rehearsal {dataset}"] = finetuned_model(
            dataset, folders, base, work_dir, (args.rehearsal_share, scenes))
    return models


def row_models(dataset: str, base: Path, trained: dict[str, dict[str, Path]], cross: bool) -> dict[str, Path]:
    """The models scored on one data set, by row name: the demo model, the data set's own fine-tunes
    and, when ``cross``, the other data set's fine-tunes as "<name>-x" (two data sets at most)."""
    if cross and len(trained) > 2:
        raise ValueError("--cross compares two data sets; pass --datasets with two")
    models = {"demo": base, **trained[dataset]}
    if cross:
        models |= {f"{name}-x": model for other, theirs in trained.items() if other != dataset
                   for name, model in theirs.items()}
    return models


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo_model", type=Path, help="reuse this make-demo checkpoint folder")
    parser.add_argument("--finetuned_model", action="append", default=[], metavar="DATASET=DIR",
                        help="reuse this fine-tuned checkpoint folder for a data set (repeatable)")
    parser.add_argument("--skip_finetune", action="store_true", help="score the demo model (and the peer) only")
    parser.add_argument("--datasets", default="plates_dev,plates_ro", help="comma-separated: plates_dev, plates_ro")
    parser.add_argument("--shared_data", type=Path, default=SHARED_DATA, help="folder holding the data sets")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="splits, trained models and eval outputs (the cache); outside the inputs")
    parser.add_argument("--settings", default=",".join(eval_settings()),
                        help="comma-separated eval settings: 256, 512, 1024 (--max_side_len), defaults (eval.py's), "
                             "core (the defaults with --core_thresh %g), nocore (the defaults with --core_thresh 0, "
                             "EAST-tf2's filters only), zoom2 (the defaults with --zoom_when_empty 2: one further "
                             "look only), demo (the demo's eval flags), finetune (the fine-tune command's)"
                             % postprocess.SYNTHETIC_ONLY_CORE_THRESH)
    parser.add_argument("--rehearsal_share", type=float, default=0.0,
                        help="also fine-tune with the demo's scenes as this share of the training images "
                             "(model 'rehearsal'); 0 = not")
    parser.add_argument("--cross", action="store_true",
                        help="also score each data set's fine-tuned models on the other data sets (models '-x')")
    parser.add_argument("--no_peer", action="store_true", help="leave out the PP-OCRv4 peer")
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    args = parser.parse_args(argv)
    if not 0.0 <= args.rehearsal_share < 1.0:
        parser.error(f"--rehearsal_share must be in [0, 1), got {args.rehearsal_share:g}")
    unknown = set(args.settings.split(",")) - set(eval_settings())
    if unknown:
        parser.error(f"--settings: unknown {', '.join(sorted(unknown))}; known: {', '.join(eval_settings())}")
    try:
        args.finetuned_model = dict(item.split("=", 1) for item in args.finetuned_model)
    except ValueError:
        parser.error("--finetuned_model takes DATASET=DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    work_dir = args.work_dir.resolve()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    datasets = prepare_datasets(args.datasets.split(","), args.shared_data.resolve(), work_dir)
    base, scenes = demo_model(args.demo_model, work_dir)
    seconds["demo model"] = time.perf_counter() - started
    trained = {dataset: {} if args.skip_finetune else fine_tunes(dataset, folders, base, scenes, work_dir, args, seconds)
               for dataset, folders in datasets.items()}
    rows, plate_sizes = [], {}
    for dataset, folders in datasets.items():
        plate_sizes[dataset] = plate_sizes_at(folders["test"])
        models = row_models(dataset, base, trained, args.cross)
        phase = time.perf_counter()
        rows += score_rows(models, dataset, folders["test"], work_dir, args.settings.split(","),
                           peer=not args.no_peer)
        seconds[f"scoring {dataset}"] = time.perf_counter() - phase
    seconds["total"] = time.perf_counter() - started
    print_table(rows)
    print_plate_sizes(plate_sizes)
    print("\nseconds: " + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))
    if args.json:
        print(json.dumps({"rows": rows, "seconds": seconds, "settings": eval_settings(), "plate_sizes": plate_sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
