"""Run a trained EAST model over a folder of images: box files, overlays, summary.json and, given ground truth, scores.

    python eval.py --test_data_path=DIR --model_path=DIR --output_dir=DIR [--gt_path=DIR|ZIP]

For every readable image it writes ``<stem>.txt`` (``res_<stem>.txt`` with
``--output_format=icdar``) holding one box a line, ``x1,y1,x2,y2,x3,y3,x4,y4``
as integers in the original image's pixels, clockwise from the top-left point
(an empty file when nothing was found), the image with the boxes drawn (same
file name as the input, unless ``--nowrite_images``), and ``summary.json``
(per-image timings and counts, the figures when ``--gt_path`` is given). All
files are written atomically; the output folder is created if missing and
never emptied.

The library part is ``run_evaluation(EvalConfig)``; ``main`` only parses flags.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

import icdar
import path_guard
import postprocess

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
OUTPUT_FORMATS = ("plain", "icdar")
OVERLAY_COLOR_BGR = (0, 255, 255)  # EAST-tf2 draws (255, 255, 0) in RGB: yellow
OVERLAY_THICKNESS_PER_PX = 1 / 640  # line width grows with the image so boxes stay visible
SUMMARY_FILE = "summary.json"
TIMING_KEYS = ("read", "resize", "network", "decode", "nms", "write")

Predictor = postprocess.Predictor  # uint8 (B, H, W, 3) RGB pixels -> (score_map, geo_map)
DETECT_DEFAULTS = postprocess.DetectOptions()


@dataclass(frozen=True)
class EvalConfig:
    """Everything one evaluation run needs (eval.py's flags)."""

    test_data_path: str
    model_path: str
    output_dir: str
    score_map_thresh: float = DETECT_DEFAULTS.score_map_thresh
    box_thresh: float = DETECT_DEFAULTS.box_thresh
    # None: the one the model's checkpoint records (train.py --eval_core_thresh), else DetectOptions' (0, off).
    core_thresh: float | None = None
    nms_thres: float = DETECT_DEFAULTS.nms_thres
    # None: the scale the model's checkpoint records (train.py), else DetectOptions' (EAST-tf2's 2400).
    max_side_len: int | None = None
    batch_size: int = 1
    write_images: bool = True
    gt_path: str | None = None
    annotation_format: str = "auto"
    output_format: str = "plain"
    test_scales: str = ""
    # None: postprocess.ZOOM_WHEN_EMPTY at the checkpoint's recorded scale, else one run (settle_zoom_when_empty);
    # a number, "2,3" or a sequence of increasing factors (postprocess.parse_zoom_when_empty).
    zoom_when_empty: float | str | tuple[float, ...] | None = None
    # None: on at the checkpoint's recorded scale, else off (see postprocess.settle_flip_test).
    flip_test: bool | None = None
    zoom_confirm_iou: float = DETECT_DEFAULTS.zoom_confirm_iou

    def __post_init__(self):
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        self.detect_options  # noqa: B018  (validates the detection settings now, in one place)

    @property
    def detect_options(self) -> postprocess.DetectOptions:
        """The detection settings (validated by DetectOptions: thresholds in [0, 1], sides >= 32);
        max_side_len None stands for DetectOptions' default here (see ``for_model``)."""
        return postprocess.DetectOptions(
            score_map_thresh=self.score_map_thresh, box_thresh=self.box_thresh, nms_thres=self.nms_thres,
            core_thresh=postprocess.settle_core_thresh(self.core_thresh, {}),
            max_side_len=postprocess.settle_max_side_len(self.max_side_len, {}),
            test_scales=postprocess.parse_test_scales(self.test_scales),
            zoom_when_empty=postprocess.settle_zoom_when_empty(self.zoom_when_empty, True, self.test_scales),
            flip_test=postprocess.settle_flip_test(self.flip_test, True, self.test_scales, {}),
            zoom_confirm_iou=self.zoom_confirm_iou)

    def for_model(self, model_info: dict) -> "EvalConfig":
        """This config with max_side_len, zoom_when_empty, flip_test and core_thresh settled for the model
        (postprocess.settle_for_model): max_side_len and core_thresh the given ones, else the model's
        recorded ones (``model_info``, from its checkpoint), else DetectOptions' defaults."""
        settled = postprocess.settle_for_model(self.detect_options, self.max_side_len, self.zoom_when_empty,
                                               self.flip_test, self.core_thresh, model_info)
        if self.max_side_len is None and model_info.get("max_side_len") is not None and not self.test_scales:
            log.info("max_side_len %d: the scale the model's training implies (its checkpoint records it); "
                     "--max_side_len overrides it", settled.max_side_len)
        if self.core_thresh is None and settled.core_thresh:
            log.info("core_thresh %g: the one the model's checkpoint records (train.py --eval_core_thresh); "
                     "--core_thresh overrides it", settled.core_thresh)
        return dataclasses.replace(self, max_side_len=settled.max_side_len, zoom_when_empty=settled.zoom_when_empty,
                                   flip_test=settled.flip_test, core_thresh=settled.core_thresh)


@dataclass
class ImageResult:
    """What eval produced for one image.

    Attributes:
        quads: int32 (N, 4, 2) original-image px, clockwise from the top-left point.
        scores: float32 (N,) mean score-map value inside each box.
        seconds: time per stage (TIMING_KEYS) for this image.
    """

    image_path: Path
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    quads: np.ndarray
    scores: np.ndarray
    seconds: dict[str, float]
    result_file: str = ""
    overlay_file: str = ""


# --------------------------------------------------------------------------- inputs


def list_images(test_data_path: str | os.PathLike) -> list[Path]:
    """Image files under a folder (recursively, sorted) or the one image file given.

    Raises:
        ValueError: the path does not exist, holds no images, or two images share a
            file stem (their result files would overwrite each other).
    """
    path = Path(test_data_path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"--test_data_path {path}: no such folder or file")
    images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise ValueError(f"--test_data_path {path}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    seen: dict[str, Path] = {}
    for image_path in images:
        if image_path.stem in seen:
            raise ValueError(f"--test_data_path {path}: {seen[image_path.stem]} and {image_path} have the same "
                             f"stem, so their result files would collide; evaluate them separately")
        seen[image_path.stem] = image_path
    return images


def read_image_rgb(image_path: Path) -> np.ndarray | None:
    """uint8 (H, W, 3) RGB, or None when the file cannot be decoded."""
    try:
        data = np.fromfile(str(image_path), dtype=np.uint8)
    except OSError:
        return None
    try:
        image_bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # e.g. a header announcing more pixels than OpenCV decodes
        return None
    if image_bgr is None:
        return None
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)


def result_file_name(stem: str, output_format: str) -> str:
    """``<stem>.txt`` (plain) or ``res_<stem>.txt`` (icdar, the name the ICDAR server expects)."""
    prefix = icdar.RESULT_PREFIX if output_format == "icdar" else ""
    return f"{prefix}{stem}{icdar.TEXT_SUFFIX}"


# --------------------------------------------------------------------------- model


def load_predictor(model_path: str) -> tuple[Predictor, dict]:
    """The network at ``model_path`` as a batch function, plus what its loader says about it.

    ``model_path`` is a training checkpoint (folder or one ``ckpt-N``), a SavedModel folder,
    a ``.tflite`` or an ``.onnx`` file (``exported_models.load_predictor``). A checkpoint is
    loaded by ``checkpoints.load_model_for_inference``: no network access, no ImageNet download.
    """
    import exported_models  # noqa: PLC0415  (pulls in TensorFlow; keep `import eval` light)

    predictor = exported_models.load_predictor(model_path)
    return predictor, dict(predictor.info)


# --------------------------------------------------------------------------- boxes


def draw_overlay(image_rgb: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """BGR copy of the image with the quads drawn as closed polygons."""
    overlay = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    thickness = max(1, round(max(image_rgb.shape[:2]) * OVERLAY_THICKNESS_PER_PX))
    if len(quads):
        cv2.polylines(overlay, [quad.reshape(-1, 1, 2).astype(np.int32) for quad in quads], True,
                      OVERLAY_COLOR_BGR, thickness)
    return overlay


def write_image_atomic(path: Path, image_bgr: np.ndarray) -> None:
    """Encode by the file's extension and write atomically."""
    ok, encoded = cv2.imencode(path.suffix, image_bgr)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image with extension {path.suffix!r}")
    icdar.write_bytes_atomic(path, encoded.tobytes())


# --------------------------------------------------------------------------- the run


def _read_batches(images: Sequence[Path], config: EvalConfig, unreadable: list[dict]):
    """Yield lists of (path, rgb, read seconds): up to batch_size images whose network inputs
    have the same size at every scale (so each scale runs them in one network call)."""
    scales = config.detect_options.scales
    pending: list = []
    for image_path in images:
        start = time.perf_counter()
        image_rgb = read_image_rgb(image_path)
        seconds = time.perf_counter() - start
        if image_rgb is None:
            log.warning("%s: cannot read the image; skipped", image_path)
            unreadable.append({"image": str(image_path), "reason": "cannot be decoded as an image"})
            continue
        item = (image_path, image_rgb, seconds, [postprocess.input_hw(image_rgb.shape[:2], s) for s in scales])
        if pending and (len(pending) == config.batch_size or pending[0][3] != item[3]):
            yield pending
            pending = []
        pending.append(item)
    if pending:
        yield pending


def detect_images(images: Sequence[Path], predict: Predictor, config: EvalConfig,
                  on_result: Callable[[ImageResult, np.ndarray], None] | None = None,
                  unreadable: list[dict] | None = None) -> list[ImageResult]:
    """Run the detector (postprocess.Detector) over images.

    Args:
        images: image files.
        predict: batch function (``load_predictor``), uint8 RGB pixels in.
        config: its detect_options and batch_size are used.
        on_result: called with (result, image_rgb) for each image as soon as it is
            done (eval writes the files here, and times it).
        unreadable: list that receives {"image", "reason"} for images that cannot be read.

    Returns:
        One ImageResult per readable image, in input order.
    """
    unreadable = [] if unreadable is None else unreadable
    detector = postprocess.Detector(predict, config.detect_options)
    results = []
    for batch in _read_batches(images, config, unreadable):
        detections = detector.detect_batch([image_rgb for _, image_rgb, _, _ in batch])
        for (image_path, image_rgb, read_seconds, _), detection in zip(batch, detections):
            seconds = {key: 0.0 for key in TIMING_KEYS} | detection.seconds | {"read": read_seconds}
            result = ImageResult(image_path=image_path, image_hw=tuple(image_rgb.shape[:2]),
                                 input_hw=detection.input_hw, quads=detection.quads, scores=detection.scores,
                                 seconds=seconds)
            if on_result is not None:
                on_result(result, image_rgb)
            results.append(result)
    return results


def _check_output_dir(config: EvalConfig) -> None:
    """Refuses an --output_dir that is, holds or lies inside an input (images, ground truth, model)."""
    path_guard.check_outputs_apart({"--output_dir": config.output_dir},
                                   {"--test_data_path": config.test_data_path, "--gt_path": config.gt_path,
                                    "--model_path": config.model_path})


def score_results(detections: dict[str, np.ndarray], input_stems: Sequence[str], gt_path: str,
                  annotation_format: str = "auto",
                  ground_truth: dict[str, icdar.Annotation] | None = None) -> icdar.Evaluation:
    """ICDAR 2015 Task 4.1 figures for eval's detections.

    Args:
        detections: image stem -> int32 (N, 4, 2) quads for the images read.
        input_stems: stems of all input images, readable or not; an unreadable
            image counts as one without detections.
        gt_path, annotation_format: see ``icdar.load_ground_truth``.
        ground_truth: already loaded from gt_path (None loads it here).

    Returns:
        The Evaluation over the ground-truth images that were inputs. Ground truth
        for images that were not inputs is left out, with a warning.
    """
    if ground_truth is None:
        ground_truth = icdar.load_ground_truth(gt_path, annotation_format)
    inputs = set(input_stems)
    scored = {stem: annotation for stem, annotation in ground_truth.items() if stem in inputs}
    if len(scored) < len(ground_truth):
        log.warning("%s: %d ground-truth image(s) are not among the inputs and are not scored",
                    gt_path, len(ground_truth) - len(scored))
    no_truth = sorted(inputs - set(ground_truth))
    if no_truth:
        log.warning("%d input image(s) have no ground truth in %s and are not scored (e.g. %s)",
                    len(no_truth), gt_path, no_truth[0])
    return icdar.evaluate(scored, {stem: quads for stem, quads in detections.items() if stem in scored})


def _image_entry(result: ImageResult, evaluation: icdar.ImageEvaluation | None) -> dict:
    entry = {
        "image": str(result.image_path),
        "result_file": result.result_file,
        "overlay_file": result.overlay_file,
        "image_hw": list(result.image_hw),
        "input_hw": list(result.input_hw),
        "boxes": int(len(result.quads)),
        "seconds": {key: round(result.seconds[key], 6) for key in TIMING_KEYS}
        | {"total": round(sum(result.seconds[key] for key in TIMING_KEYS), 6)},
    }
    if evaluation is not None:
        entry["evaluation"] = {
            "precision": evaluation.precision, "recall": evaluation.recall, "hmean": evaluation.hmean,
            "matched": evaluation.matched, "gt_care": evaluation.gt_care, "det_care": evaluation.det_care,
            "all_correct": evaluation.all_correct,
        }
    return entry


def _zoomed_count(config: EvalConfig, results: Sequence[ImageResult]) -> int:
    """How many images' boxes come from a later, zoomed run (none at max_side_len, some at one of the
    zoom_when_empty factors times it; see DetectOptions.zoom_when_empty)."""
    if config.test_scales or config.max_side_len is None:
        return 0
    return sum(tuple(result.input_hw) != postprocess.input_hw(result.image_hw, config.max_side_len) for result in results)


def build_summary(config: EvalConfig, model_info: dict, results: Sequence[ImageResult], unreadable: list[dict],
                  evaluation: icdar.Evaluation | None) -> dict:
    """The content of summary.json (plain JSON types)."""
    per_image_eval = evaluation.per_image if evaluation is not None else {}
    totals = {key: round(sum(result.seconds[key] for result in results), 6) for key in TIMING_KEYS}
    images_total = round(sum(totals.values()), 6)
    summary = {
        "config": dataclasses.asdict(config),
        "model": model_info,
        "images": len(results),
        "unreadable": unreadable,
        "boxes": int(sum(len(result.quads) for result in results)),
        "images_zoomed": _zoomed_count(config, results),
        "seconds": totals | {"total": images_total,
                             "per_image": round(images_total / len(results), 6) if results else 0.0},
        "per_image": [_image_entry(result, per_image_eval.get(result.image_path.stem)) for result in results],
    }
    if evaluation is not None:
        summary["evaluation"] = evaluation.summary() | {
            "matched": evaluation.matched, "gt_care": evaluation.gt_care, "det_care": evaluation.det_care}
    return summary


def run_evaluation(config: EvalConfig, predictor: tuple[Predictor, dict] | None = None) -> dict:
    """Detect text in every image of ``config.test_data_path`` and write the outputs.

    Args:
        config: the run's settings.
        predictor: (batch function, model info) to use instead of loading
            ``config.model_path`` (tests and benchmarks pass one).

    Returns:
        The summary also written to ``<output_dir>/summary.json``; with
        ``config.gt_path``, its "evaluation" holds precision, recall, hmean,
        images and images_all_correct.

    Raises:
        ValueError: bad paths or settings, named in the message.
    """
    images = list_images(config.test_data_path)
    output_dir = Path(config.output_dir)
    _check_output_dir(config)
    if config.gt_path is not None and not Path(config.gt_path).exists():
        raise ValueError(f"--gt_path {config.gt_path}: no such folder or file")
    # Bad ground truth fails here, before the network runs and before anything is written.
    ground_truth = None if config.gt_path is None else icdar.load_ground_truth(config.gt_path,
                                                                                 config.annotation_format)
    output_dir.mkdir(parents=True, exist_ok=True)
    predict, model_info = predictor if predictor is not None else load_predictor(config.model_path)
    config = config.for_model(model_info)
    newline = "\r\n" if config.output_format == "icdar" else "\n"
    log.info("%d image(s) from %s", len(images), config.test_data_path)

    def write_outputs(result: ImageResult, image_rgb: np.ndarray) -> None:
        start = time.perf_counter()
        result.result_file = result_file_name(result.image_path.stem, config.output_format)
        icdar.write_icdar_file(output_dir / result.result_file, result.quads, newline=newline)
        if config.write_images:
            result.overlay_file = result.image_path.name
            write_image_atomic(output_dir / result.overlay_file, draw_overlay(image_rgb, result.quads))
        result.seconds["write"] = time.perf_counter() - start
        log.info("%s: %d box(es), %.0f ms", result.image_path.name, len(result.quads),
                 1000 * sum(result.seconds.values()))

    unreadable: list[dict] = []
    results = detect_images(images, predict, config, on_result=write_outputs, unreadable=unreadable)
    evaluation = None
    if config.gt_path is not None:
        evaluation = score_results({result.image_path.stem: result.quads for result in results},
                                   [image.stem for image in images], config.gt_path, config.annotation_format,
                                   ground_truth)
    summary = build_summary(config, model_info, results, unreadable, evaluation)
    icdar.write_bytes_atomic(output_dir / SUMMARY_FILE,
                             (json.dumps(summary, indent=1, default=str) + "\n").encode("utf-8"))
    return summary


# --------------------------------------------------------------------------- CLI


def _define_flags(flags) -> None:
    from annotation_loaders import format_choices

    flags.DEFINE_string("test_data_path", "./data/ICDAR2015/test_data", "folder of test images (or one image)")
    flags.DEFINE_string("model_path", "./east_resnet_50_rbox/",
                        "checkpoint folder (its latest checkpoint is used) or one checkpoint file")
    flags.DEFINE_string("output_dir", "./data/ICDAR2015/test_data_output/",
                        "where result files, overlays and summary.json go (created if missing, never emptied)")
    flags.DEFINE_string("gpu_num", None, "GPU ids for CUDA_VISIBLE_DEVICES, e.g. '0' (default: leave it as is)")
    flags.DEFINE_string("gpu_list", None,
                        "same as --gpu_num here: sets CUDA_VISIBLE_DEVICES (which GPUs this process sees). "
                        "train.py's --gpu_list differs: it picks the GPUs MirroredStrategy trains on")
    flags.DEFINE_float("score_map_thresh", DETECT_DEFAULTS.score_map_thresh,
                       "score-map threshold for text pixels, in [0, 1]")
    flags.DEFINE_float("box_thresh", DETECT_DEFAULTS.box_thresh,
                       "drop boxes whose mean score inside is at or below this, in [0, 1]")
    flags.DEFINE_float("core_thresh", DETECT_DEFAULTS.core_thresh,
                       "drop boxes whose core (the box shrunk as training shrinks text) scores at or below this on "
                       "average, in [0, 1]; 0: off, as in EAST-tf2. When not given, the one a checkpoint records "
                       "(train.py --eval_core_thresh; make demo's records %g), else this default"
                       % postprocess.SYNTHETIC_ONLY_CORE_THRESH)
    flags.DEFINE_float("nms_thres", DETECT_DEFAULTS.nms_thres, "IoU threshold of the locality-aware NMS, in [0, 1]")
    flags.DEFINE_integer("max_side_len", DETECT_DEFAULTS.max_side_len,
                         "longest image side fed to the network (px); when not given, the scale a checkpoint "
                         "records (train.py: where its training showed text), else this default")
    flags.DEFINE_string("test_scales", "",
                        "comma-separated max_side_len values, e.g. '256,512,1024': run the network at each, "
                        "merge all boxes by NMS (default: one run at --max_side_len)")
    flags.DEFINE_string("zoom_when_empty", None,
                        "comma-separated increasing factors: an image with no box is run again with each times "
                        "--max_side_len in turn until a run gives boxes, and that run's boxes are kept; 1: one "
                        "run (default: %s at the scale the checkpoint records, else 1)"
                        % ",".join(f"{factor:g}" for factor in postprocess.ZOOM_WHEN_EMPTY))
    flags.DEFINE_float("zoom_confirm_iou", DETECT_DEFAULTS.zoom_confirm_iou,
                       "when a zoom look keeps several boxes, drop those no box of the look before or after it "
                       "overlaps at this IoU, unless that drops them all; 0: keep them all. In [0, 1]")
    flags.DEFINE_boolean("flip_test", None,
                         "also run each image mirrored left to right and decode the mean of the two score maps "
                         "(twice the network time; fewer false boxes at a model's own scale); --noflip_test: one "
                         "pass (default: on at the scale the checkpoint records, else off)")
    flags.DEFINE_integer("batch_size", 1, "images per network call (consecutive images of the same size)")
    flags.DEFINE_boolean("write_images", True, "write an overlay image with the boxes drawn")
    flags.DEFINE_string("gt_path", None, "ground truth (folder or ICDAR zip) to score the detections against")
    flags.DEFINE_string("annotation_format", "auto",
                        f"format of --gt_path: {', '.join(format_choices())}")
    flags.DEFINE_enum("output_format", "plain", list(OUTPUT_FORMATS),
                      "plain: <stem>.txt; icdar: res_<stem>.txt (ICDAR submission naming, CRLF)")


def main(argv: Sequence[str]) -> None:
    from absl import flags  # noqa: PLC0415

    del argv
    flag_values = flags.FLAGS
    gpus = flag_values.gpu_list if flag_values.gpu_list is not None else flag_values.gpu_num
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    logging.getLogger().setLevel(logging.INFO)
    try:
        values = {field.name: flag_values[field.name].value for field in dataclasses.fields(EvalConfig)}
        if not flag_values["max_side_len"].present:
            values["max_side_len"] = None  # the checkpoint's recorded scale, else the flag's default
        if not flag_values["core_thresh"].present:
            values["core_thresh"] = None  # the checkpoint's recorded one, else the flag's default
        config = EvalConfig(**values)
        summary = run_evaluation(config)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    seconds = summary["seconds"]
    print(f"{summary['images']} image(s), {summary['boxes']} box(es), {len(summary['unreadable'])} unreadable; "
          f"{seconds['per_image'] * 1000:.0f} ms per image (network {seconds['network'] * 1000:.0f} ms, decode "
          f"{seconds['decode'] * 1000:.0f} ms, NMS {seconds['nms'] * 1000:.0f} ms in all); outputs in "
          f"{config.output_dir}")
    if summary["images_zoomed"]:
        settled = summary["config"]
        zoom_sides = postprocess.DetectOptions(max_side_len=settled["max_side_len"],
                                               zoom_when_empty=settled["zoom_when_empty"]).zoom_sides
        print(f"{summary['images_zoomed']} image(s) with no box at --max_side_len {settled['max_side_len']} got theirs "
              f"from a later look at {' or '.join(map(str, zoom_sides))} (--zoom_when_empty; on photos that may "
              f"hold no plate those looks find false boxes: --zoom_when_empty 1 looks once)")
    if summary["config"]["core_thresh"]:
        source = "--core_thresh" if config.core_thresh is not None else "the model records it; --core_thresh"
        print(f"boxes whose core scored {summary['config']['core_thresh']:g} or less on average were dropped "
              f"({source} 0 keeps them, as EAST-tf2 does)")
    if summary["config"]["flip_test"]:
        print("each image was also run mirrored and the two score maps averaged (--flip_test; --noflip_test: "
              "one pass, half the network time)")
    if "evaluation" in summary:
        figures = summary["evaluation"]
        print(f"precision {figures['precision']:.3f} recall {figures['recall']:.3f} hmean {figures['hmean']:.3f}; "
              f"{figures['images_all_correct']}/{figures['images']} images all correct")


if __name__ == "__main__":
    from absl import app, flags

    _define_flags(flags)
    app.run(main)
