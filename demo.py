"""``make demo``: the whole license-plate path on generated data, offline, on a CPU.

1. generate street scenes with license plates  (synthetic_data.py plates)
2. split them 80/20 into train and test         (data_preprocessor.py split)
3. train a light EAST (MobileNetV2, no download) (train.py)
4. detect plates on the test split and score     (eval.py --gt_path)

Every step runs the project's real command line, printed before it runs, so you can copy it.
The demo keeps its files in ``data/demo/``, ``checkpoints/demo/`` and ``outputs/demo/``.
Running it again reuses the generated data, resumes (or skips) training from ``checkpoints/demo/``
and re-evaluates; ``python demo.py --fresh`` (or ``make clean``) deletes those three folders first.

Bring your own photos (CPU, no GPU needed)::

    python demo.py --finetune_data DIR                          # checks DIR, splits it 80/20 (seed 0)
    python demo.py --finetune_train DIR --finetune_test DIR     # data that is already split

checks the photos (data_preprocessor.py stats), splits them into ``data/finetune/`` (never writing
into DIR), fine-tunes the demo model (``checkpoints/demo/plates``; trained first by the normal demo
if absent) for a fixed number of steps (FinetuneConfig.max_steps: 1200 steps at input 128, about
12 minutes on a free 2-core CPU) into ``checkpoints/finetune/plates`` and scores the test part into
``outputs/finetune/``. Unusable data: one line and exit status 2. ``--rehearsal_share 0.5`` mixes the
demo's synthetic scenes in as half of the training images, for a model that must also work on photos
unlike yours (another country's plates): README, "Rehearsal".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import postprocess

import path_guard
from synthetic_data import PLATE_SCENES_VERSION

REPO_ROOT = Path(__file__).resolve().parent
# eval.py's detection defaults: the one source of the thresholds both configs below use.
_DETECT_DEFAULTS = postprocess.DetectOptions()
DATA_MARKER = "demo_settings.json"  # written into data/demo/; names the settings the files there came from


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo's commands are run with. Changing a field regenerates or retrains."""

    # Data (synthetic_data.py plates): second-generation scenes at photo-like scale (plates 3-60 % of
    # the width, several countries' layouts, cars, unannotated look-alikes, night, blur, JPEG).
    seed: int = 0
    count: int = 1000
    width: int = 640
    height: int = 480
    min_plates: int = 1
    max_plates: int = 3
    min_plate_width: float = 0.03
    max_plate_width: float = 0.6
    # Most plates near 8 % of the width, as in real photos (synthetic_data.PlateSceneConfig): the model
    # then records an eval scale that also suits real photos (320 for this recipe, measured by the bench
    # at 328199f; 352 before ed91ab2 changed how that scale is computed).
    typical_plate_width: float = 0.08
    max_angle: float = 30.0
    clutter: float = 1.0
    test_ratio: float = 0.2
    # Training (train.py).
    backbone: str = "mobilenetv2"
    input_size: int = 128
    batch_size: int = 16
    max_steps: int = 1000
    init_learning_rate: float = 2e-3
    # Halved every 250 steps (2e-3 down to 2.5e-4 for the last 250), not every 500: a run that ends at
    # 1e-3 stops at a random point of a noisy path, and its figure on real photos was a lottery. Images
    # all correct at eval.py's defaults on photos the model never saw (plates_dev test and train/,
    # plates_ro test and train/: 44, 178, 107, 427), seeds 0/1/2 on the same scenes: every 500 steps
    # 25/99/44/104, 25/111/43/113, 13/62/28/57; every 250 25/101/46/127, 14/93/49/128, 28/95/46/126.
    lr_decay_steps: int = 250
    lr_decay_rate: float = 0.5
    save_checkpoint_steps: int = 250
    # Every crop is scaled so one plate is 8-60 % of the 128 px input (10-77 px) wide, whatever the
    # photo's size: the model meets plates at every scale a real photo shows them at, and plates
    # down to 5 px tall stay in the loss.
    text_width_range: str = "0.08,0.6"
    min_text_size: int = 5
    # EAST-tf2's default.
    min_crop_side_ratio: float = 0.1
    nb_workers: int = 1
    # BatchNorm keeps moving statistics for inference with momentum 0.997-0.999: they need thousands
    # of steps to forget their initial values. A short run from scratch must let them move faster.
    bn_momentum: float = 0.9
    # Recorded in the checkpoint as the --core_thresh eval.py and serve.py use with this model: a model of
    # synthetic plates alone scores real lamps, badges and signs high enough to pass EAST-tf2's filters, and
    # the core filter drops most of them (README "Results", "--core_thresh"). A fine-tune records 0 (off).
    eval_core_thresh: float = postprocess.SYNTHETIC_ONLY_CORE_THRESH
    # Evaluation (eval.py). The scenes are 640x480 with plates 3-60 % of the width: at 512 px the smallest
    # are ~15 px wide, inside what the model trained on. Measured on 100 fresh scenes (seed 7) with the
    # 1000-step model: hmean 0.404 at 512 px, 0.373 at 640 (threshold 0.8).
    max_side_len: int = 512
    score_map_thresh: float = _DETECT_DEFAULTS.score_map_thresh
    box_thresh: float = _DETECT_DEFAULTS.box_thresh
    nms_thres: float = _DETECT_DEFAULTS.nms_thres
    # The figure the demo promises on its own test split. The second-generation scenes (tiny and night
    # plates, unannotated look-alikes) are far harder than the first generation's quiet streets (0.99
    # there); 1000 CPU steps from random weights reach ~0.4 on them, so the demo checks that it learned
    # something real rather than promising more than a CPU-minutes model gives.
    target_hmean: float = 0.25

    def data_settings(self) -> dict:
        names = ("seed", "count", "width", "height", "min_plates", "max_plates", "min_plate_width",
                 "max_plate_width", "typical_plate_width", "max_angle", "clutter", "test_ratio")
        # The generator's own version too: scenes drawn by an older synthetic_data.py are regenerated.
        return {name: getattr(self, name) for name in names} | {"scenes_version": PLATE_SCENES_VERSION}

    def train_settings(self) -> dict:
        names = ("backbone", "input_size", "batch_size", "max_steps", "init_learning_rate", "lr_decay_steps",
                 "lr_decay_rate", "save_checkpoint_steps", "text_width_range", "min_text_size",
                 "min_crop_side_ratio", "bn_momentum", "eval_core_thresh")
        return {name: getattr(self, name) for name in names}


PROFILES = {
    "full": DemoConfig(),
    # A minute-long run for the tests: proves the commands fit together, promises no accuracy.
    "smoke": DemoConfig(count=10, width=160, height=128, max_plates=1, min_plate_width=0.3, max_plate_width=0.5,
                        input_size=64, batch_size=2, max_steps=2, save_checkpoint_steps=1, max_side_len=160,
                        target_hmean=0.0, backbone="tiny"),
}


@dataclass(frozen=True)
class DemoPaths:
    """The demo's own folders, relative to the repository root when they lie inside it."""

    data: Path
    checkpoints: Path
    outputs: Path

    @property
    def generated(self) -> Path:
        return self.data / "plates"

    @property
    def train(self) -> Path:
        return self.data / "train"

    @property
    def test(self) -> Path:
        return self.data / "test"

    @property
    def model(self) -> Path:
        return self.checkpoints / "plates"


def default_paths(root: Path) -> DemoPaths:
    return DemoPaths(root / "data" / "demo", root / "checkpoints" / "demo", root / "outputs" / "demo")


class DemoError(RuntimeError):
    """A step failed; the message says which and what to do."""


def _shown(path: Path) -> str:
    """A path as the user would type it from the repository root."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def run_command(arguments: list[str], title: str) -> float:
    """Prints ``$ python …`` then runs it from the repository root; returns the seconds it took."""
    print(f"\n== {title}", flush=True)
    print("$ " + shlex.join(["python", *arguments]), flush=True)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise DemoError(f"'{title}' failed (exit status {completed.returncode}); its messages are above")
    print(f"   ({seconds:.0f} s)", flush=True)
    return seconds


def _remove(path: Path, why: str) -> None:
    if path.exists():
        print(f"removing {_shown(path)}/ ({why})", flush=True)
        shutil.rmtree(path)


def _read_marker(marker: Path) -> dict | None:
    """The settings a demo or fine-tune folder's marker file records; None when there is none."""
    return json.loads(marker.read_text()) if marker.is_file() else None


def prepare_folders(config: DemoConfig, paths: DemoPaths, fresh: bool) -> tuple[bool, bool]:
    """Decides what a rerun keeps. Returns (data_ready, training_settings_same)."""
    if fresh:
        for path in (paths.data, paths.checkpoints, paths.outputs):
            _remove(path, "--fresh")
    marker = paths.data / DATA_MARKER
    previous = _read_marker(marker)
    if previous is None and paths.data.exists() and any(paths.data.iterdir()):
        raise DemoError(
            f"{_shown(paths.data)}/ holds files the demo did not write (no {DATA_MARKER}); "
            "move them away or run 'make clean' / 'python demo.py --fresh' to let the demo use this folder")
    data_ready = bool(previous and previous.get("complete") and previous.get("data") == config.data_settings())
    same_training = bool(data_ready and previous.get("train") == config.train_settings())
    if previous and not data_ready:
        _remove(paths.data, "the demo's data settings changed or the last generation was interrupted")
    if not same_training and paths.checkpoints.exists():
        _remove(paths.checkpoints, "the data or training settings changed since the demo last trained")
    return data_ready, same_training


def _write_marker(config: DemoConfig, paths: DemoPaths, complete: bool) -> None:
    paths.data.mkdir(parents=True, exist_ok=True)
    content = {"complete": complete, "data": config.data_settings(), "train": config.train_settings()}
    (paths.data / DATA_MARKER).write_text(json.dumps(content, indent=2) + "\n")


def generate_and_split(config: DemoConfig, paths: DemoPaths) -> float:
    _write_marker(config, paths, complete=False)
    seconds = run_command(
        ["synthetic_data.py", "plates", "--output_dir", _shown(paths.generated), "--count", str(config.count),
         "--seed", str(config.seed), "--width", str(config.width), "--height", str(config.height),
         "--min_plates", str(config.min_plates), "--max_plates", str(config.max_plates),
         "--min_plate_width", str(config.min_plate_width), "--max_plate_width", str(config.max_plate_width),
         "--typical_plate_width", str(config.typical_plate_width),
         "--max_angle", str(config.max_angle), "--clutter", str(config.clutter)],
        "1/4 generate synthetic street scenes with license plates")
    seconds += run_command(
        ["data_preprocessor.py", "split", f"--data_path={_shown(paths.generated)}", "--annotation_format=plate",
         f"--train_dir={_shown(paths.train)}", f"--test_dir={_shown(paths.test)}",
         f"--ratio={1.0 - config.test_ratio:g}", f"--seed={config.seed}"],
        "2/4 split them 80/20 into train/ and test/")
    _write_marker(config, paths, complete=True)
    return seconds


def train(config: DemoConfig, paths: DemoPaths) -> float:
    return run_command(
        ["train.py", f"--training_data_path={_shown(paths.train)}", "--annotation_format=plate",
         f"--checkpoint_path={_shown(paths.model)}", f"--backbone={config.backbone}", "--backbone_weights=none",
         f"--input_size={config.input_size}", f"--batch_size={config.batch_size}",
         f"--max_steps={config.max_steps}", f"--init_learning_rate={config.init_learning_rate}",
         f"--lr_decay_steps={config.lr_decay_steps}", f"--lr_decay_rate={config.lr_decay_rate}",
         f"--save_checkpoint_steps={config.save_checkpoint_steps}", f"--nb_workers={config.nb_workers}",
         f"--min_crop_side_ratio={config.min_crop_side_ratio}", f"--bn_momentum={config.bn_momentum}",
         f"--text_width_range={config.text_width_range}", f"--min_text_size={config.min_text_size}",
         f"--eval_core_thresh={config.eval_core_thresh:g}", f"--seed={config.seed}"],
        f"3/4 train EAST ({config.backbone} backbone from scratch; rerunning resumes from the last checkpoint)")


def evaluate(config: DemoConfig, paths: DemoPaths) -> float:
    return run_command(
        ["eval.py", f"--test_data_path={_shown(paths.test)}", f"--model_path={_shown(paths.model)}",
         f"--output_dir={_shown(paths.outputs)}", f"--gt_path={_shown(paths.test)}", "--annotation_format=plate",
         f"--max_side_len={config.max_side_len}", f"--score_map_thresh={config.score_map_thresh}",
         f"--box_thresh={config.box_thresh}",
         f"--nms_thres={config.nms_thres}"],
        "4/4 detect plates on the test split and score them against the annotations")


def read_scores(paths: DemoPaths) -> dict:
    """The figures eval.py wrote into summary.json."""
    summary_path = paths.outputs / "summary.json"
    if not summary_path.is_file():
        raise DemoError(f"eval.py wrote no {_shown(summary_path)}")
    summary = json.loads(summary_path.read_text())
    scores = summary.get("evaluation", summary)
    missing = [k for k in ("precision", "recall", "hmean", "images", "images_all_correct") if k not in scores]
    if missing:
        raise DemoError(f"{_shown(summary_path)} lacks {', '.join(missing)}")
    return scores


def run_demo(config: DemoConfig, paths: DemoPaths, fresh: bool = False) -> dict:
    """Runs the four steps; returns the scores plus ``seconds`` per step."""
    started = time.perf_counter()
    data_ready, same_training = prepare_folders(config, paths, fresh)
    seconds = {}
    if data_ready:
        print(f"reusing the demo data in {_shown(paths.data)}/ (same settings as last time)")
        seconds["data"] = 0.0
    else:
        seconds["data"] = generate_and_split(config, paths)
    _write_marker(config, paths, complete=True)  # records the training settings checkpoints/demo will hold
    if same_training and paths.model.exists():
        print(f"{_shown(paths.model)}/ holds the last demo run: train.py resumes it (or stops at once when done)")
    seconds["train"] = train(config, paths)
    seconds["eval"] = evaluate(config, paths)
    scores = read_scores(paths)
    seconds["total"] = time.perf_counter() - started
    return {**scores, "seconds": seconds}


# --------------------------------------------------------------------------- #
# Fine-tune the demo model on the user's own photos
# --------------------------------------------------------------------------- #
FINETUNE_MARKER = "finetune_settings.json"  # written into data/finetune/; names the source and settings
MIN_FINETUNE_IMAGES = 5  # an 80/20 split of fewer leaves no test image worth scoring


@dataclass(frozen=True)
class FinetuneConfig:
    """How ``--finetune_*`` trains and scores. A fixed step count, not a time budget, so that a rerun
    (or another machine) gives the same model. 1200 steps of 8 crops at 192 px, about 12 minutes on a
    free 2-core CPU. (With 16 crops at 128 px, continuing 600 steps to 1200 moved hmean on plates_dev's
    44 test photos from 0.874 to 0.899 and on plates_ro's 107 test frames from 0.822 to 0.854.)"""

    # 8 crops of 192 px (about the pixels of 16 of 128) leave room for a plate of any aspect at the
    # largest height taught. 128 px crops cut EU plates (4.7:1) down to 27 px tall, under the 31 px
    # (median) they have in plates_ro's frames at --max_side_len 1024: two seeds of each got 62 and
    # 67/107 there against 48 and 47, level at the defaults; plates_dev level at the defaults, 3.7
    # photos behind at 256 px (README, "Results").
    input_size: int = 192
    batch_size: int = 8
    max_steps: int = 1200
    init_learning_rate: float = 1e-3
    lr_decay_steps: int = 300
    lr_decay_rate: float = 0.5
    save_checkpoint_steps: int = 100
    # Plates 5-38 px tall (2.7-20 % of the input), whatever the photo's size: for 2:1 plates the demo's
    # 8-60 % of a 128 px input's width, and plates of other aspects at the same character sizes. The
    # height key against the width key, at 128 px: on plates_ro's EU frames (two seeds, its unannotated
    # plates as don't-care) level at 512 px and at the defaults and 27/107 ahead at 1024; on plates_dev
    # level. The demo itself keeps the width key: trained from scratch on the synthetic scenes, the
    # height key drew large false boxes (README, "Results").
    text_height_range: str = "0.027,0.2"
    min_text_size: int = DemoConfig.min_text_size
    min_crop_side_ratio: float = 0.1
    nb_workers: int = 1
    bn_momentum: float = 0.9
    # Without it a fine-tune on one camera's photos learns their look. bench_quality, defaults: at home
    # 40 -> 42/44 (plates_dev) and 79 -> 81/107 (plates_ro); on the other country 7 -> 10/44 and
    # 37 -> 55/107 (README "Results", with the scratch runs of other seeds).
    color_jitter: float = 0.4
    seed: int = 0
    split_ratio: float = 0.8
    # None: eval.py runs at the scale the fine-tuned checkpoint records, the one at which the user's
    # own training photos showed their plates to the network (augmentation.implied_max_side_len).
    max_side_len: int | None = None
    score_map_thresh: float = _DETECT_DEFAULTS.score_map_thresh
    box_thresh: float = _DETECT_DEFAULTS.box_thresh
    nms_thres: float = _DETECT_DEFAULTS.nms_thres

    def settings(self) -> dict:
        return dataclasses.asdict(self)


FINETUNE_PROFILES = {
    "full": FinetuneConfig(),
    "smoke": FinetuneConfig(input_size=64, batch_size=2, max_steps=2, save_checkpoint_steps=1, max_side_len=160),
}


@dataclass(frozen=True)
class FinetuneSource:
    """The user's photos: one folder to split, or an existing train/test pair."""

    data: Path | None = None
    train: Path | None = None
    test: Path | None = None

    def folders(self) -> list[Path]:
        return [path for path in (self.data, self.train, self.test) if path is not None]

    def describe(self) -> dict:
        return {name: None if path is None else str(path.resolve())
                for name, path in (("data", self.data), ("train", self.train), ("test", self.test))}


@dataclass(frozen=True)
class Rehearsal:
    """Synthetic scenes mixed into the fine-tune (train.py --rehearsal_data_path, --rehearsal_share), so
    that the model keeps finding plates on photos unlike the user's. ``find`` returns the folder (called
    after the base model is ready); ``given`` is the folder the user named, None for the demo's own."""

    share: float
    find: Callable[[], Path]
    given: Path | None = None

    def describe(self) -> dict:
        return {"share": self.share, "folder": None if self.given is None else str(self.given.resolve())}


def rehearsal_scenes(given: Path | None, demo_paths: DemoPaths, config: DemoConfig) -> Path:
    """The given folder, else the demo's synthetic training scenes (generated first when data/demo/ is
    absent or empty); DemoError when data/demo/ holds something else."""
    if given is not None:
        if not given.is_dir():
            raise DemoError(f"--rehearsal_data {given} is not a folder")
        return given
    marker = demo_paths.data / DATA_MARKER
    previous = _read_marker(marker)
    if previous and previous.get("complete") and demo_paths.train.is_dir():
        return demo_paths.train
    if demo_paths.data.exists() and any(demo_paths.data.iterdir()):
        raise DemoError(f"{_shown(demo_paths.data)}/ holds no finished demo scenes to rehearse on; run "
                        "'python demo.py' first or pass --rehearsal_data DIR")
    generate_and_split(config, demo_paths)
    return demo_paths.train


def finetune_paths(root: Path) -> DemoPaths:
    return DemoPaths(root / "data" / "finetune", root / "checkpoints" / "finetune", root / "outputs" / "finetune")


def check_not_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuses any output folder that is, holds or lies inside an input folder (data, base model)."""
    try:
        path_guard.check_outputs_apart({f"output folder {_shown(path)}": path for path in outputs},
                                       {f"input {_shown(path)}": path for path in inputs})
    except path_guard.PathOverlapError as error:
        raise DemoError(f"{error} (output and input overlap; the fine-tune never writes into its inputs: "
                        "move the photos or pass another --root)") from None


class DataUnusable(DemoError):
    """The user's photos cannot be trained or scored on (exit status 2)."""


def check_photos(folder: Path) -> dict:
    """``data_preprocessor.py stats --json`` on folder; DataUnusable (exit 2) when it cannot train or score."""
    if not folder.is_dir():
        raise DataUnusable(f"{folder} is not a folder")
    arguments = ["data_preprocessor.py", "stats", f"--data_path={folder}", "--json"]
    print("$ " + shlex.join(["python", *arguments]), flush=True)
    completed = subprocess.run([sys.executable, *arguments], cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        raise DataUnusable(f"{folder}: {lines[-1] if lines else f'stats failed ({completed.returncode})'}")
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"   {folder}: {report['images']} images, {report['boxes']} boxes, format {report['format']}, "
          f"{len(report['skipped'])} annotation line(s) skipped", flush=True)
    if report["boxes"] == 0:
        raise DataUnusable(f"{folder}: {report['images']} images but no usable annotated box "
                           "(see 'python data_preprocessor.py stats --data_path ...' for the reasons)")
    return report


def _wanted(source: FinetuneSource, config: FinetuneConfig, rehearsal: Rehearsal | None) -> dict:
    """What a fine-tune folder's marker records: a change to any of it starts the fine-tune over."""
    wanted = {"source": source.describe(), "settings": config.settings()}
    return wanted if rehearsal is None else wanted | {"rehearsal": rehearsal.describe()}


def _prepare_finetune_folders(source: FinetuneSource, config: FinetuneConfig, paths: DemoPaths,
                              rehearsal: Rehearsal | None = None) -> bool:
    """Keeps a previous split of the same photos with the same settings; returns whether it is ready."""
    marker = paths.data / FINETUNE_MARKER
    previous = _read_marker(marker)
    if previous is None and paths.data.exists() and any(paths.data.iterdir()):
        raise DemoError(f"{_shown(paths.data)}/ holds files the fine-tune did not write (no {FINETUNE_MARKER}); "
                        "move them away or pass another --root")
    wanted = _wanted(source, config, rehearsal)
    ready = bool(previous and previous.get("complete") and previous.get("wanted") == wanted)
    if previous and not ready:
        _remove(paths.data, "other photos or settings than last time, or an interrupted split")
        for folder in (paths.checkpoints, paths.outputs):
            _remove(folder, "it belongs to the previous fine-tune")
    elif previous is None and paths.checkpoints.exists():
        raise DemoError(f"{_shown(paths.checkpoints)}/ holds a model that {FINETUNE_MARKER} does not describe; "
                        "move it away or pass another --root")
    return ready


def _write_finetune_marker(source: FinetuneSource, config: FinetuneConfig, paths: DemoPaths, complete: bool,
                           rehearsal: Rehearsal | None = None) -> None:
    paths.data.mkdir(parents=True, exist_ok=True)
    content = {"complete": complete, "wanted": _wanted(source, config, rehearsal)}
    (paths.data / FINETUNE_MARKER).write_text(json.dumps(content, indent=2) + "\n")


def split_photos(source: FinetuneSource, config: FinetuneConfig, paths: DemoPaths,
                 rehearsal: Rehearsal | None = None) -> float:
    """Splits source.data 80/20 into paths.train/test (fixed seed); nothing to do for a given pair."""
    _write_finetune_marker(source, config, paths, complete=False, rehearsal=rehearsal)
    seconds = 0.0
    if source.data is not None:
        seconds = run_command(
            ["data_preprocessor.py", "split", f"--data_path={source.data}", f"--train_dir={_shown(paths.train)}",
             f"--test_dir={_shown(paths.test)}", f"--ratio={config.split_ratio:g}", f"--seed={config.seed}"],
            f"split your photos {config.split_ratio:.0%}/{1 - config.split_ratio:.0%} (seed {config.seed})")
    _write_finetune_marker(source, config, paths, complete=True, rehearsal=rehearsal)
    return seconds


def _newest_state(base_model: Path) -> dict:
    """``state.json`` of the checkpoint that ``latest`` names."""
    newest = (base_model / "latest").read_text().strip()
    return json.loads((base_model / newest / "state.json").read_text())


def newest_step(base_model: Path) -> int:
    """The training step of a checkpoint folder's newest checkpoint; 0 when it has none yet."""
    try:
        return int(_newest_state(base_model)["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def base_backbone(base_model: Path) -> str:
    """The backbone named in the base model's newest checkpoint (``latest`` -> ``ckpt-N/state.json``)."""
    try:
        return _newest_state(base_model)["model"]["backbone"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DemoError(f"{_shown(base_model)} is not a finished train.py checkpoint folder ({error})") from None


def finetune_train(config: FinetuneConfig, train_dir: Path, base_model: Path, paths: DemoPaths,
                   rehearsal: tuple[Path, float] | None = None) -> float:
    """train.py from base_model on train_dir; rehearsal: (folder, share) mixed in, or None."""
    mixed = [] if rehearsal is None else [f"--rehearsal_data_path={_shown(rehearsal[0])}",
                                          f"--rehearsal_share={rehearsal[1]:g}"]
    return run_command(
        ["train.py", f"--training_data_path={_shown(train_dir)}", f"--pretrained_model_path={_shown(base_model)}",
         f"--checkpoint_path={_shown(paths.model)}", f"--backbone={base_backbone(base_model)}",
         "--backbone_weights=none",
         f"--input_size={config.input_size}", f"--batch_size={config.batch_size}",
         f"--max_steps={config.max_steps}", f"--init_learning_rate={config.init_learning_rate}",
         f"--lr_decay_steps={config.lr_decay_steps}", f"--lr_decay_rate={config.lr_decay_rate}",
         f"--save_checkpoint_steps={config.save_checkpoint_steps}", f"--nb_workers={config.nb_workers}",
         f"--min_crop_side_ratio={config.min_crop_side_ratio}", f"--bn_momentum={config.bn_momentum}",
         f"--text_height_range={config.text_height_range}", f"--min_text_size={config.min_text_size}",
         f"--color_jitter={config.color_jitter}", f"--seed={config.seed}", *mixed],
        f"fine-tune the demo model on your photos ({config.max_steps} steps; rerunning resumes)")


def finetune_evaluate(config: FinetuneConfig, test_dir: Path, paths: DemoPaths) -> float:
    return run_command(
        ["eval.py", f"--test_data_path={_shown(test_dir)}", f"--model_path={_shown(paths.model)}",
         f"--output_dir={_shown(paths.outputs)}", f"--gt_path={_shown(test_dir)}",
         *([] if config.max_side_len is None else [f"--max_side_len={config.max_side_len}"]),
         f"--score_map_thresh={config.score_map_thresh}",
         f"--box_thresh={config.box_thresh}", f"--nms_thres={config.nms_thres}"],
        "detect plates on your test photos and score them against your annotations")


def run_finetune(source: FinetuneSource, config: FinetuneConfig, paths: DemoPaths, base_model: Path,
                 train_base=None, rehearsal: Rehearsal | None = None) -> dict:
    """Checks, splits, fine-tunes and scores; returns eval.py's scores plus ``seconds`` per step.

    train_base: None, or called (no arguments) to train base_model first or finish it (the demo's own model).
    rehearsal: None, or the synthetic scenes to mix into the training photos.
    """
    started = time.perf_counter()
    print("\n== check your photos", flush=True)
    reports = {folder: check_photos(folder) for folder in source.folders()}
    if source.data is not None and reports[source.data]["images"] < MIN_FINETUNE_IMAGES:
        raise DataUnusable(f"{source.data}: {reports[source.data]['images']} images; the 80/20 split needs at "
                           f"least {MIN_FINETUNE_IMAGES}")
    check_not_inputs([paths.data, paths.checkpoints, paths.outputs], [*source.folders(), base_model])
    seconds = {"base": 0.0}
    if train_base is not None:
        seconds["base"] = train_base()
    elif not base_model.exists():
        raise DemoError(f"base model {_shown(base_model)} does not exist")
    mixed = None
    if rehearsal is not None:
        mixed = (rehearsal.find(), rehearsal.share)
        check_not_inputs([paths.data, paths.checkpoints, paths.outputs], [mixed[0]])
    ready = _prepare_finetune_folders(source, config, paths, rehearsal)
    seconds["split"] = 0.0 if ready else split_photos(source, config, paths, rehearsal)
    train_dir = paths.train if source.data is not None else source.train
    test_dir = paths.test if source.data is not None else source.test
    seconds["train"] = finetune_train(config, train_dir, base_model, paths, mixed)
    seconds["eval"] = finetune_evaluate(config, test_dir, paths)
    scores = read_scores(paths)
    seconds["total"] = time.perf_counter() - started
    return {**scores, "seconds": seconds}


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true",
                        help="delete data/demo, checkpoints/demo and outputs/demo first and start over")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full",
                        help="'smoke' is a tiny run for the tests (no accuracy promised)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the seed of the demo's scenes and of its training (default: the profile's, 0); runs of "
                             "the recipe with other seeds differ on real photos (README 'Results')")
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="folder under which data/demo, checkpoints/demo and outputs/demo live "
                             "(and data/finetune, checkpoints/finetune, outputs/finetune)")
    group = parser.add_argument_group("fine-tune the demo model on your own photos")
    group.add_argument("--finetune_data", type=Path,
                       help="folder of your photos and their annotations; split 80/20 (seed 0) into data/finetune/")
    group.add_argument("--finetune_train", type=Path, help="your training photos, when already split")
    group.add_argument("--finetune_test", type=Path, help="your test photos, when already split")
    group.add_argument("--base_model", type=Path,
                       help="checkpoint folder to fine-tune (default: the demo's, trained first if absent)")
    group.add_argument("--rehearsal_share", type=float, default=0.0,
                       help="mix synthetic scenes into the fine-tune as this share of its training images, in "
                            "[0, 1): the model then keeps finding plates on photos unlike yours, at some cost on "
                            "photos like them (README, 'Rehearsal'); 0 = your photos only")
    group.add_argument("--rehearsal_data", type=Path,
                       help="the scenes to mix in (default: the demo's, data/demo/train, generated if absent)")
    args = parser.parse_args(argv)
    if args.finetune_data is not None and (args.finetune_train or args.finetune_test):
        parser.error("give --finetune_data, or --finetune_train with --finetune_test, not both")
    if (args.finetune_train is None) != (args.finetune_test is None):
        parser.error("--finetune_train and --finetune_test go together")
    fine_tuning = args.finetune_data is not None or args.finetune_train is not None
    for name in ("base_model", "rehearsal_data"):
        if getattr(args, name) is not None and not fine_tuning:
            parser.error(f"--{name} is for a fine-tune (--finetune_data or --finetune_train/--finetune_test)")
    if args.rehearsal_share and not fine_tuning:
        parser.error("--rehearsal_share is for a fine-tune (--finetune_data or --finetune_train/--finetune_test)")
    if not 0.0 <= args.rehearsal_share < 1.0:
        parser.error(f"--rehearsal_share must be in [0, 1), got {args.rehearsal_share:g}")
    if args.rehearsal_data is not None and not args.rehearsal_share:
        parser.error("--rehearsal_data needs --rehearsal_share (the share of the training images it gives)")
    return args


def _print_result(result: dict, paths: DemoPaths, what: str) -> None:
    print("\n== result")
    print(f"precision {result['precision']:.3f}  recall {result['recall']:.3f}  hmean {result['hmean']:.3f}")
    print(f"{result['images_all_correct']}/{result['images']} {what} all correct "
          "(every plate found, no false detection)")
    print(f"overlays and box files: {_shown(paths.outputs)}/   model: {_shown(paths.model)}/")


def demo_config(args: argparse.Namespace) -> DemoConfig:
    """The profile's DemoConfig, with --seed when given."""
    config = PROFILES[args.profile]
    return config if args.seed is None else dataclasses.replace(config, seed=args.seed)


def finetune_main(args: argparse.Namespace) -> int:
    """``--finetune_*``: exit status 0, 1 when a step failed, 2 when the photos are unusable."""
    root = args.root.resolve()
    demo_paths = default_paths(root)
    source = FinetuneSource(args.finetune_data, args.finetune_train, args.finetune_test)
    base_model = (args.base_model or demo_paths.model).resolve()
    paths = finetune_paths(root)

    def train_base() -> float:
        """Runs the normal demo unless its model is finished (a half-trained one would be resumed)."""
        config = demo_config(args)
        if newest_step(base_model) >= config.max_steps:
            return 0.0
        print(f"\n{_shown(base_model)}/ is absent or unfinished: the normal demo trains it first", flush=True)
        return run_demo(config, demo_paths, fresh=False)["seconds"]["total"]

    rehearsal = None
    if args.rehearsal_share:
        rehearsal = Rehearsal(args.rehearsal_share, lambda: rehearsal_scenes(
            args.rehearsal_data, demo_paths, demo_config(args)).resolve(), args.rehearsal_data)
    try:
        result = run_finetune(source, FINETUNE_PROFILES[args.profile], paths, base_model,
                              train_base if args.base_model is None else None, rehearsal)
    except DataUnusable as error:
        print(f"demo.py: your photos are not usable: {error}", file=sys.stderr)
        return 2
    except DemoError as error:
        print(f"\ndemo.py: {error}", file=sys.stderr)
        return 1
    _print_result(result, paths, "test photos")
    seconds = result["seconds"]
    print(f"time: demo model {seconds['base']:.0f} s, split {seconds['split']:.0f} s, fine-tune "
          f"{seconds['train']:.0f} s, evaluation {seconds['eval']:.0f} s, total {seconds['total'] / 60:.1f} min")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.finetune_data is not None or args.finetune_train is not None:
        return finetune_main(args)
    config = demo_config(args)
    paths = default_paths(args.root.resolve())
    try:
        result = run_demo(config, paths, fresh=args.fresh)
    except DemoError as error:
        print(f"\ndemo.py: {error}", file=sys.stderr)
        return 1
    seconds = result["seconds"]
    _print_result(result, paths, "test images")
    print(f"time: data {seconds['data']:.0f} s, training {seconds['train']:.0f} s, "
          f"evaluation {seconds['eval']:.0f} s, total {seconds['total'] / 60:.1f} min")
    if result["hmean"] < config.target_hmean:
        print(f"demo.py: hmean {result['hmean']:.3f} is below the demo's target {config.target_hmean}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
