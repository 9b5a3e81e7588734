"""End-to-end CPU inference time per 1280x720 image, ours against EAST-tf2's eval.py, in the same run.

    python bench/bench_infer.py [--images 5] [--model_path DIR] [--reference_repo .ref/EAST-tf2] [--repeats 2] [--json]

Times every stage of eval.py's path per image: read, resize (ours feeds uint8
pixels; the network scales them, EAST-tf2 normalizes on the host), network, decode, NMS (with the mean-score box filter), writing (result file and
overlay). The network is an EAST-ResNet50 with random weights (``--backbone`` picks
another backbone, ``--model_path`` loads a trained model instead). Model building and one warm-up image are not
timed.

Random weights give a score map without text, so decode and NMS do almost
nothing there. To time them on a realistic load, the bench also decodes the
"perfect" score and geometry maps of the real ICDAR 2015 test images' ground
truth (``geometry.make_rbox_targets``) with both implementations.

With ``--reference_repo`` (a checkout of solaris33/EAST-tf2, never copied into
this project), its eval.py path runs on the same images in a subprocess (its
module names clash with ours): its ``EAST_model`` (ResNet50 ImageNet download
patched to random weights, for this bench only), ``resize_image``,
``model.predict``, ``detect`` (restore + lanms + the per-box mean-score loop)
and its file and overlay writing. The ratio is reference / ours.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TEST = REPO_ROOT.parent / "shared" / "data" / "icdar_real" / "test"
IMAGE_W, IMAGE_H = 1280, 720
STAGES = ("read", "resize", "network", "decode", "nms", "write")


# --------------------------------------------------------------------------- inputs


def prepare_images(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` 1280x720 JPEGs in ``folder``: the real ICDAR test images when present, else drawn ones."""
    sources = sorted(SHARED_TEST.glob("img_*.jpg")) if SHARED_TEST.is_dir() else []
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        image = cv2.imread(str(sources[index % len(sources)])) if sources else None
        if image is None or image.shape[:2] != (IMAGE_H, IMAGE_W):
            image = np.full((IMAGE_H, IMAGE_W, 3), rng.integers(60, 200, 3), np.uint8)
            for _ in range(12):
                origin = (int(rng.integers(0, IMAGE_W - 300)), int(rng.integers(40, IMAGE_H)))
                cv2.putText(image, "TEXT %d" % rng.integers(1000), origin, cv2.FONT_HERSHEY_SIMPLEX,
                            float(rng.uniform(0.8, 2.5)), tuple(int(v) for v in rng.integers(0, 255, 3)), 3)
        path = folder / f"img_{index + 1}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def ground_truth_maps(folder: Path) -> Path | None:
    """Perfect score/geo maps (network-input size 704x1280) of the real test ground truth, as an .npz."""
    sys.path.insert(0, str(REPO_ROOT))
    import geometry
    import icdar

    files = sorted(SHARED_TEST.glob("gt_img_*.txt")) if SHARED_TEST.is_dir() else []
    if not files:
        return None
    input_h = IMAGE_H // 32 * 32
    score_maps, geo_maps = [], []
    for path in files:
        annotation = icdar.read_annotation_file(path)
        quads = geometry.order_clockwise_from_top_left(annotation.quads * np.array([1.0, input_h / IMAGE_H]))
        score_map, geo_map, _ = geometry.make_rbox_targets(quads, annotation.dont_care, (input_h, IMAGE_W))
        score_maps.append(score_map)
        geo_maps.append(geo_map)
    path = folder / "gt_maps.npz"
    np.savez(path, score_maps=np.stack(score_maps), geo_maps=np.stack(geo_maps))
    return path


def _best(runs: list[dict]) -> dict:
    """The run with the smallest total (this machine is shared; the fastest run is the least disturbed)."""
    return min(runs, key=lambda run: run["total"])


# --------------------------------------------------------------------------- ours


def run_ours(images: list[Path], model_path: str | None, backbone: str, repeats: int, work: Path,
             maps: Path | None) -> dict:
    sys.path.insert(0, str(REPO_ROOT))
    import eval as east_eval

    if model_path:
        predictor = east_eval.load_predictor(model_path)
    else:
        import exported_models
        import model as east_model

        network = east_model.build_east(512, backbone=backbone, backbone_weights="none")
        predictor = (exported_models.keras_batch_function(network), {"model": f"EAST-{backbone}, random weights"})
    warm = work / "ours_warm"
    warm.mkdir()
    os.link(images[0], warm / images[0].name)
    for _ in range(2):  # the first call of a shape runs eagerly, the second builds the graph
        east_eval.run_evaluation(east_eval.EvalConfig(str(warm), "", str(work / "ours_warm_out")), predictor)
    runs = []
    for repeat in range(repeats):
        summary = east_eval.run_evaluation(
            east_eval.EvalConfig(str(images[0].parent), "", str(work / f"ours_out{repeat}")), predictor)
        per_image = {stage: summary["seconds"][stage] / summary["images"] for stage in STAGES}
        per_image["total"] = sum(per_image.values())
        per_image["boxes"] = summary["boxes"] / summary["images"]
        runs.append(per_image)
    result = {"per_image": _best(runs)}
    if maps is not None:
        import postprocess

        options = postprocess.DetectOptions()  # EAST-tf2's detect() defaults: 0.8, 0.1, 0.2
        data = np.load(maps)
        timings, boxes = [], 0
        for score_map, geo_map in zip(data["score_maps"], data["geo_maps"]):
            start = time.perf_counter()
            found = postprocess.detect_boxes(score_map, geo_map, score_map_thresh=options.score_map_thresh,
                                             box_thresh=options.box_thresh, nms_thres=options.nms_thres)
            timings.append(time.perf_counter() - start)
            boxes += len(found)
        result["gt_maps"] = {"decode_nms": float(np.mean(timings)), "boxes": boxes}
    return result


# --------------------------------------------------------------------------- EAST-tf2 (subprocess)


def reference_worker(reference_repo: Path, image_dir: Path, output_dir: Path, repeats: int,
                     maps: Path | None) -> dict:
    """EAST-tf2's eval.py path over the images; runs in its own process (module names clash with ours)."""
    import lanms  # noqa: F401  the installed lanms-contrib, before the checkout's own lanms/ folder shadows it

    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.patches"):  # imported but unused by eval
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.path.insert(0, str(reference_repo))
    import tensorflow as tf

    resnet50 = tf.keras.applications.ResNet50

    def resnet50_without_download(*args, **kwargs):
        kwargs["weights"] = None
        return resnet50(*args, **kwargs)

    tf.keras.applications.ResNet50 = resnet50_without_download
    import eval as ref_eval
    import model as ref_model

    model = ref_model.EAST_model()
    images = sorted(image_dir.glob("*.jpg"))
    output_dir.mkdir(parents=True, exist_ok=True)
    notes = set()

    def one_image(path: Path) -> dict:
        seconds = {}
        start = time.perf_counter()
        img = cv2.imread(str(path))[:, :, ::-1]
        seconds["read"] = time.perf_counter() - start
        start = time.perf_counter()
        img_resized, (ratio_h, ratio_w) = ref_eval.resize_image(img)
        img_resized = (img_resized / 127.5) - 1
        seconds["resize"] = time.perf_counter() - start
        start = time.perf_counter()
        score_map, geo_map = model.predict(img_resized[np.newaxis, :, :, :])
        seconds["network"] = time.perf_counter() - start
        start = time.perf_counter()
        boxes, timer = ref_eval.detect(score_map=score_map, geo_map=geo_map, timer={"net": 0, "restore": 0, "nms": 0})
        seconds["decode"] = timer["restore"]
        seconds["nms"] = time.perf_counter() - start - timer["restore"]
        start = time.perf_counter()
        if boxes is not None:
            boxes = boxes[:, :8].reshape((-1, 4, 2))
            boxes[:, :, 0] /= ratio_w
            boxes[:, :, 1] /= ratio_h
            with open(output_dir / f"{path.stem}.txt", "w") as result_file:
                for box in boxes:
                    box = ref_eval.sort_poly(box.astype(np.int32))
                    if np.linalg.norm(box[0] - box[1]) < 5 or np.linalg.norm(box[3] - box[0]) < 5:
                        continue
                    result_file.write("{},{},{},{},{},{},{},{}\r\n".format(*box.reshape(-1)))
                    try:
                        cv2.polylines(img[:, :, ::-1], [box.astype(np.int32).reshape((-1, 1, 2))], True,
                                      color=(255, 255, 0), thickness=1)
                    except cv2.error:
                        notes.add("its cv2.polylines on a reversed-channel view fails with OpenCV 5")
        cv2.imwrite(str(output_dir / path.name), img[:, :, ::-1])
        seconds["write"] = time.perf_counter() - start
        return seconds

    with contextlib.redirect_stdout(io.StringIO()):
        one_image(images[0])  # warm-up: builds the predict function
        runs = []
        for _ in range(repeats):
            per_image = {stage: 0.0 for stage in STAGES}
            for path in images:
                for stage, seconds in one_image(path).items():
                    per_image[stage] += seconds / len(images)
            per_image["total"] = sum(per_image.values())
            runs.append(per_image)
        result = {"per_image": _best(runs), "notes": sorted(notes)}
        if maps is not None:
            data = np.load(maps)
            timings, boxes = [], 0
            for score_map, geo_map in zip(data["score_maps"], data["geo_maps"]):
                start = time.perf_counter()
                found, _ = ref_eval.detect(score_map=score_map[None], geo_map=geo_map[None],
                                           timer={"net": 0, "restore": 0, "nms": 0})
                timings.append(time.perf_counter() - start)
                boxes += 0 if found is None else len(found)
            result["gt_maps"] = {"decode_nms": float(np.mean(timings)), "boxes": boxes}
    return result


def run_reference(reference_repo: Path, image_dir: Path, work: Path, repeats: int, maps: Path | None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--_reference_worker", "--reference_repo",
               str(reference_repo.resolve()), "--_image_dir", str(image_dir), "--_output_dir",
               str(work / "reference_out"), "--repeats", str(repeats)]
    if maps is not None:
        command += ["--_maps", str(maps)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=str(work))
    if done.returncode != 0:
        raise SystemExit(f"error: the EAST-tf2 run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def _row(name: str, per_image: dict) -> str:
    parts = "  ".join(f"{stage} {per_image[stage] * 1000:7.1f}" for stage in STAGES)
    return f"{name:9s} ms/image: {parts}  total {per_image['total'] * 1000:7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5, help="number of 1280x720 images")
    parser.add_argument("--model_path", default=None, help="trained checkpoint (default: random ResNet50 EAST)")
    parser.add_argument("--backbone", default="resnet50",
                        help="backbone of the random-weights model (EAST-tf2 has resnet50 only)")
    parser.add_argument("--reference_repo", type=Path, default=None, help="checkout of solaris33/EAST-tf2")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the images; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export_formats", default="",
                        help="also time these exported formats in the same run (bench_export.py), e.g. "
                             "keras,saved_model,tflite,onnx,tflite_int8,onnx_int8")
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--_reference_worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_image_dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_output_dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_maps", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._reference_worker:
        print(json.dumps(reference_worker(args.reference_repo, args._image_dir, args._output_dir, args.repeats,
                                          args._maps)))
        return 0

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        image_dir = work / "images"
        image_dir.mkdir()
        images = prepare_images(image_dir, args.images, args.seed)
        maps = ground_truth_maps(work)
        ours = run_ours(images, args.model_path, args.backbone, args.repeats, work, maps)
        reference = None
        if args.reference_repo is not None:
            reference = run_reference(args.reference_repo, image_dir, work, args.repeats, maps)

    report = {"images": len(images), "image_wh": [IMAGE_W, IMAGE_H], "cpus": os.cpu_count(),
              "load_average_1min": os.getloadavg()[0], "ours": ours}
    network = f"model {args.model_path}" if args.model_path else f"random-weights EAST-{args.backbone}"
    print(f"{len(images)} images {IMAGE_W}x{IMAGE_H}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {network}")
    print(_row("ours", ours["per_image"]) + f"  boxes/image {ours['per_image']['boxes']:.1f}")
    fraction = (ours["per_image"]["decode"] + ours["per_image"]["nms"]) / ours["per_image"]["total"]
    report["ours_decode_nms_fraction"] = fraction
    if reference is not None:
        report["reference"] = reference
        report["speedup"] = reference["per_image"]["total"] / ours["per_image"]["total"]
        print(_row("EAST-tf2", reference["per_image"]))
        print(f"end to end: ours {report['speedup']:.2f}x faster than EAST-tf2's eval.py")
        if args.model_path:
            print("note: EAST-tf2 always runs its own ResNet50 (random weights), so with --model_path the two "
                  "networks differ; leave --model_path out for a like-for-like ratio")
        for note in reference.get("notes", []):
            print(f"note: EAST-tf2: {note}")
    print(f"decode+NMS: {100 * fraction:.1f}% of our time per image")
    if "gt_maps" in ours:
        line = (f"decode+NMS on perfect ground-truth maps: ours {ours['gt_maps']['decode_nms'] * 1000:.1f} ms/image "
                f"({ours['gt_maps']['boxes']} boxes)")
        if reference is not None and "gt_maps" in reference:
            line += (f", EAST-tf2 {reference['gt_maps']['decode_nms'] * 1000:.1f} ms/image "
                     f"({reference['gt_maps']['boxes']} boxes)")
        print(line)
        report["gt_maps_decode_nms_fraction"] = ours["gt_maps"]["decode_nms"] / ours["per_image"]["total"]
    if args.export_formats:
        report["exported"] = run_export_rows(args)
        for row in report["exported"]:
            print(f"{row['format']:<13} network {row['network_ms']:7.0f} ms/image, whole loop {row['total_ms']:7.0f} "
                  f"ms/image, {row['speedup_vs_keras'] or '-'}x the Keras network")
    if args.json:
        print(json.dumps(report))
    return 0


def run_export_rows(args) -> list[dict]:
    """bench_export.py's rows (ms per 1280x720 image per exported format), run from this bench."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "bench_export.py"), "--formats", args.export_formats,
               "--images", str(args.images), "--repeats", str(args.repeats), "--seed", str(args.seed),
               "--backbone", args.backbone, "--json"]
    if args.model_path:
        command += ["--model_path", args.model_path]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["rows"]


if __name__ == "__main__":
    sys.exit(main())
