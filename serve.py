"""A small local web page that runs the detector on images you pick or drop.

    python serve.py [--model_path DIR|FILE] [--port 8000] [--host 127.0.0.1]

``--model_path`` is anything exported_models.load_predictor reads: a training
checkpoint folder, a SavedModel folder, a .tflite or an .onnx file. The page shows
each image with its boxes drawn over it and the list of boxes, has a score-map
threshold slider, and downloads the results as JSON or ICDAR 2015 txt.

API (JSON in, JSON out; errors are ``{"error": message}`` with a 4xx status):
    GET  /api/info                      model format and upload limits
    POST /api/detect                    multipart field ``image``; optional query or form
                                        fields score_map_thresh, box_thresh, core_thresh, nms_thres
                                        (each in [0, 1], postprocess.DetectOptions)

Uploads are checked before decoding: size (``--max_upload_mb``), type (JPEG, PNG,
BMP or WebP, from the file's first bytes, not its name) and pixel count read from the
header (``--max_megapixels``), so a decompression bomb is refused before any pixel
buffer is allocated. Flask is needed (``pip install flask``); it is imported only
when the app is created.
"""
from __future__ import annotations

import dataclasses
import logging
import struct
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

import icdar
import postprocess

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_MEGAPIXELS = 40.0
IMAGE_FIELD = "image"
SUPPORTED_TYPES = ("jpeg", "png", "bmp", "webp")


class UploadError(ValueError):
    """An upload the page refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServeConfig:
    """Limits and default thresholds of the web demo.

    Attributes:
        max_upload_bytes: largest accepted request body.
        max_pixels: largest accepted width × height, read from the image header.
        detect: detection defaults (thresholds, max_side_len, test_scales), postprocess.DetectOptions.
    """

    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1e6)
    detect: postprocess.DetectOptions = postprocess.DetectOptions()


# --------------------------------------------------------------------------- upload checks


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame segment of a JPEG."""
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if offset + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return width, height
        offset += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_header(data: bytes) -> tuple[str, int, int]:
    """The type and size of an encoded image, read from its first bytes only.

    Args:
        data: the uploaded file's bytes.

    Returns:
        (type, width, height), type one of SUPPORTED_TYPES.

    Raises:
        UploadError: 415 when the bytes are not a supported image, 422 when the header is cut short.
    """
    if data[:3] == b"\xff\xd8\xff":
        kind, size = "jpeg", _jpeg_size(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = "png"
        size = struct.unpack(">II", data[16:24]) if len(data) >= 24 and data[12:16] == b"IHDR" else None
    elif data[:2] == b"BM":
        kind = "bmp"
        size = None
        if len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            size = (abs(width), abs(height))
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind, size = "webp", _webp_size(data)
    else:
        raise UploadError(f"not a supported image: expected one of {', '.join(SUPPORTED_TYPES)} "
                          f"(the file's first bytes are {data[:8]!r})", 415)
    if size is None or min(size) <= 0:
        raise UploadError(f"the {kind} header is damaged or cut short: no image size found", 422)
    return kind, int(size[0]), int(size[1])


def decode_upload(data: bytes, config: ServeConfig) -> np.ndarray:
    """Checks an upload and decodes it to RGB.

    Returns:
        uint8 (H, W, 3) RGB.

    Raises:
        UploadError: empty (400), too large (413), not an image (415), undecodable (422).
    """
    if not data:
        raise UploadError("the uploaded file is empty", 400)
    if len(data) > config.max_upload_bytes:
        raise UploadError(f"the file is {len(data) / 2**20:.1f} MB; the limit is "
                          f"{config.max_upload_bytes / 2**20:.1f} MB", 413)
    kind, width, height = image_header(data)
    if width * height > config.max_pixels:
        raise UploadError(f"the {kind} image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                          f"the limit is {config.max_pixels / 1e6:.1f} megapixels", 413)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # a header announcing more pixels than OpenCV decodes
        image = None
    if image is None or image.ndim != 3 or image.shape[0] * image.shape[1] > config.max_pixels:
        raise UploadError(f"the {kind} file cannot be decoded (damaged or truncated)", 422)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def request_options(values, defaults: postprocess.DetectOptions) -> postprocess.DetectOptions:
    """The request's thresholds (query or form fields), else ``defaults``, validated by DetectOptions.

    Raises:
        UploadError: 400 when a value is not a number or out of range.
    """
    changes = {}
    for name in postprocess.THRESHOLD_NAMES:
        raw = values.get(name)
        if raw in (None, ""):
            continue
        try:
            changes[name] = float(raw)
        except ValueError:
            raise UploadError(f"{name} must be a number in [0, 1], got {raw!r}", 400) from None
    try:
        return dataclasses.replace(defaults, **changes)
    except ValueError as error:
        raise UploadError(str(error), 400) from None


# --------------------------------------------------------------------------- detection


def detect(image_rgb: np.ndarray, predict: Callable, options: postprocess.DetectOptions) -> dict:
    """Runs the detector (postprocess.Detector, eval.py's pipeline) on one image.

    Args:
        image_rgb: uint8 (H, W, 3).
        predict: batch function (exported_models.load_predictor), uint8 RGB pixels in.
        options: thresholds, max_side_len and test_scales.

    Returns:
        JSON-able dict: width, height, input_width, input_height (first scale), thresholds, count,
        boxes [{"points": [[x, y] × 4] clockwise from top-left, original px, "score"}],
        icdar (the ICDAR 2015 txt, CRLF lines), seconds {"network", "postprocess"}.
    """
    start = time.perf_counter()
    detection = postprocess.Detector(predict, options)(image_rgb)
    total = time.perf_counter() - start
    network = detection.seconds.get("network", 0.0)
    return {
        "width": int(image_rgb.shape[1]), "height": int(image_rgb.shape[0]),
        "input_width": int(detection.input_hw[1]), "input_height": int(detection.input_hw[0]),
        **{name: getattr(options, name) for name in postprocess.THRESHOLD_NAMES},
        "count": int(len(detection.quads)),
        "boxes": [{"points": quad.tolist(), "score": round(float(score), 4)}
                  for quad, score in zip(detection.quads, detection.scores)],
        "icdar": icdar.format_lines(detection.quads),
        "seconds": {"network": round(network, 4), "postprocess": round(total - network, 4)},
    }


def _install_error_handlers(app, flask, config: ServeConfig) -> None:
    """Every error answers ``{"error": message}`` with its status (413 names the upload limit)."""
    from werkzeug.exceptions import HTTPException  # noqa: PLC0415  (installed with Flask)

    def error_response(message: str, status: int):
        return flask.jsonify({"error": message}), status

    @app.errorhandler(UploadError)
    def upload_error(error: UploadError):
        return error_response(str(error), error.status)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code == 413:
            return error_response(f"the upload is larger than the {config.max_upload_bytes / 2**20:.1f} MB "
                                  f"limit", 413)
        return error_response(f"{error.name}: {error.description}", error.code or 500)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("request failed")
        return error_response(f"internal error: {type(error).__name__}: {error}", 500)


def create_app(predict: Callable, config: ServeConfig = ServeConfig(), model_info: dict | None = None):
    """The Flask app: the page at ``/``, ``/api/info`` and ``/api/detect``.

    Args:
        predict: batch function images (B, H, W, 3) -> (score_map, geo_map).
        config: limits and default thresholds.
        model_info: shown by /api/info (defaults to ``predict.info`` where it has one).

    Raises:
        exported_models.MissingRuntimeError: Flask is not installed.
    """
    import exported_models  # noqa: PLC0415

    flask = exported_models.require_optional("flask", "flask", "serve.py")

    app = flask.Flask(__name__)
    # Werkzeug refuses a larger body with 413 before it is read; a little room for the form.
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes + 64 * 1024
    info = dict(model_info if model_info is not None else getattr(predict, "info", {}))

    _install_error_handlers(app, flask, config)

    @app.get("/")
    def page():
        return flask.Response(PAGE_HTML, mimetype="text/html")

    @app.get("/api/info")
    def api_info():
        return flask.jsonify({
            "model": {key: str(value) for key, value in info.items()},
            "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
            **dataclasses.asdict(config.detect), "types": list(SUPPORTED_TYPES)})

    @app.post("/api/detect")
    def api_detect():
        upload = flask.request.files.get(IMAGE_FIELD)
        if upload is None:
            raise UploadError(f"no file in the form field {IMAGE_FIELD!r}", 400)
        options = request_options(flask.request.values, config.detect)
        data = upload.read(config.max_upload_bytes + 1)
        image_rgb = decode_upload(data, config)
        result = detect(image_rgb, predict, options)
        log.info("%s: %dx%d, %d box(es)", upload.filename, result["width"], result["height"], result["count"])
        return flask.jsonify({"image": upload.filename or "image", **result})

    return app


# --------------------------------------------------------------------------- the page


PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EAST text detector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 15px system-ui, sans-serif; margin: 1.5em; color: #222; }
 #drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5em; text-align: center; }
 #drop.over { background: #eef; }
 #controls { margin: 1em 0; display: flex; gap: 1.5em; align-items: center; flex-wrap: wrap; }
 #error { color: #b00; font-weight: 600; min-height: 1.2em; }
 .result { border-top: 1px solid #ccc; padding: 1em 0; display: flex; gap: 1.5em; flex-wrap: wrap; }
 canvas.overlay { max-width: min(100%, 900px); height: auto; border: 1px solid #aaa; }
 ol.boxes { font: 13px monospace; max-height: 24em; overflow: auto; }
</style></head>
<body>
<h1>EAST text detector</h1>
<div id="drop">Drop images here or <input type="file" id="files" accept="image/*" multiple></div>
<div id="controls">
 <label>score-map threshold <input type="range" id="threshold" min="0.05" max="0.99" step="0.01" value="0.8">
  <output id="threshold-value">0.80</output></label>
 <button id="download-json" disabled>Download JSON</button>
 <button id="download-icdar" disabled>Download ICDAR txt</button>
 <span id="status"></span>
</div>
<div id="error" role="alert"></div>
<div id="results"></div>
<script>
"use strict";
const state = { files: [], results: [], generation: 0 };
const $ = (id) => document.getElementById(id);

function showError(message) { $("error").textContent = message || ""; }

async function detectFile(file) {
  const form = new FormData();
  form.append("image", file, file.name);
  const response = await fetch("/api/detect?score_map_thresh=" + $("threshold").value,
                               { method: "POST", body: form });
  let body;
  try { body = await response.json(); } catch (e) { body = { error: "HTTP " + response.status }; }
  if (!response.ok) throw new Error(file.name + ": " + (body.error || ("HTTP " + response.status)));
  return body;
}

function drawResult(file, result, index) {
  const card = document.createElement("div");
  card.className = "result";
  card.id = "result-" + index;
  const canvas = document.createElement("canvas");
  canvas.className = "overlay";
  const side = document.createElement("div");
  side.innerHTML = "<h3></h3><p><span class='box-count'></span> box(es)</p><ol class='boxes'></ol>";
  side.querySelector("h3").textContent = result.image;
  side.querySelector(".box-count").textContent = String(result.count);
  const list = side.querySelector(".boxes");
  for (const box of result.boxes) {
    const item = document.createElement("li");
    item.textContent = box.points.map((p) => p.join(",")).join(" ") + "  score " + box.score.toFixed(3);
    list.appendChild(item);
  }
  card.append(canvas, side);
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    context.lineWidth = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 400));
    context.strokeStyle = "#ffd400";
    for (const box of result.boxes) {
      context.beginPath();
      box.points.forEach(([x, y], k) => k ? context.lineTo(x, y) : context.moveTo(x, y));
      context.closePath(); context.stroke();
    }
    canvas.dataset.boxCount = String(result.count);
    canvas.dataset.ready = "1";
    URL.revokeObjectURL(url);
  };
  image.onerror = () => { showError(result.image + ": the browser cannot display this image"); };
  image.src = url;
  return card;
}

async function runAll() {
  const generation = ++state.generation;
  showError("");
  $("status").textContent = state.files.length ? "detecting…" : "";
  const results = [], cards = [], errors = [];
  for (const file of state.files) {
    try {
      const result = await detectFile(file);
      results.push(result);
      cards.push(drawResult(file, result, cards.length));
    } catch (error) { errors.push(error.message); }
    if (generation !== state.generation) return;  // the slider moved: a newer run is under way
  }
  state.results = results;
  $("results").replaceChildren(...cards);
  showError(errors.join("\\n"));
  $("status").textContent = results.length ? results.reduce((n, r) => n + r.count, 0) + " box(es) in " +
                            results.length + " image(s)" : "";
  $("download-json").disabled = $("download-icdar").disabled = !results.length;
}

function setFiles(files) { state.files = Array.from(files); runAll(); }

function download(name, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name; link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

$("files").addEventListener("change", (event) => setFiles(event.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault(); drop.classList.remove("over"); setFiles(event.dataTransfer.files);
});
let timer = null;
$("threshold").addEventListener("input", () => {
  $("threshold-value").textContent = Number($("threshold").value).toFixed(2);
  clearTimeout(timer);
  timer = setTimeout(runAll, 300);
});
$("download-json").addEventListener("click", () =>
  download("detections.json", JSON.stringify(state.results, null, 1), "application/json"));
$("download-icdar").addEventListener("click", () => {
  for (const result of state.results) {
    const stem = result.image.replace(/\\.[^.]*$/, "");
    download("res_" + stem + ".txt", result.icdar, "text/plain");
  }
});
</script>
</body></html>
"""


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str]):
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="Local web page for the EAST detector.")
    parser.add_argument("--model_path", default="./east_resnet_50_rbox/",
                        help="checkpoint folder, SavedModel folder, .tflite or .onnx file")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--max_upload_mb", type=float, default=DEFAULT_MAX_UPLOAD_MB)
    parser.add_argument("--max_megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS)
    defaults = postprocess.DetectOptions()
    parser.add_argument("--max_side_len", type=int, default=None,
                        help=f"longest image side fed to the network (default: the scale a checkpoint records, "
                             f"else {defaults.max_side_len})")
    parser.add_argument("--score_map_thresh", type=float, default=defaults.score_map_thresh)
    parser.add_argument("--box_thresh", type=float, default=defaults.box_thresh)
    parser.add_argument("--core_thresh", type=float, default=None,
                        help=f"drop boxes whose core (the box shrunk as training shrinks text) scores at or below "
                             f"this on average; 0: off, as in EAST-tf2 (default: the one a checkpoint records, "
                             f"else {defaults.core_thresh:g})")
    parser.add_argument("--nms_thres", type=float, default=defaults.nms_thres)
    parser.add_argument("--test_scales", default="",
                        help="comma-separated max_side_len values run and merged by NMS (default: --max_side_len)")
    parser.add_argument("--zoom_when_empty", default=None,
                        help=f"comma-separated increasing factors: an image with no box is run again with each "
                             f"times --max_side_len in turn until a run gives boxes; 1: one run (default: "
                             f"{','.join(f'{factor:g}' for factor in postprocess.ZOOM_WHEN_EMPTY)} at the scale a "
                             f"checkpoint records, else 1)")
    parser.add_argument("--zoom_confirm_iou", type=float, default=defaults.zoom_confirm_iou,
                        help="when a zoom look keeps several boxes, drop those no box of the look before or after "
                             "it overlaps at this IoU, unless that drops them all; 0: keep them all")
    parser.add_argument("--flip_test", dest="flip_test", action="store_true", default=None,
                        help="also run each image mirrored and decode the mean of the two score maps (twice the "
                             "network time; default: on at the scale a checkpoint records, else off)")
    parser.add_argument("--noflip_test", dest="flip_test", action="store_false", help="one pass per image")
    parser.add_argument("--num_threads", type=int, default=None, help="CPU threads for TFLite / onnxruntime")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import exported_models  # noqa: PLC0415

    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        given = postprocess.DetectOptions(
            score_map_thresh=args.score_map_thresh, box_thresh=args.box_thresh, nms_thres=args.nms_thres,
            test_scales=postprocess.parse_test_scales(args.test_scales), zoom_confirm_iou=args.zoom_confirm_iou)

        def settled(model_info: dict) -> postprocess.DetectOptions:
            return postprocess.settle_for_model(given, args.max_side_len, args.zoom_when_empty, args.flip_test,
                                                args.core_thresh, model_info)

        settled({})  # bad values fail here, before the model loads; the rest is settled once it has
        predictor = exported_models.load_predictor(args.model_path, num_threads=args.num_threads)
        detect_options = settled(predictor.info)
        config = ServeConfig(max_upload_bytes=int(args.max_upload_mb * 2**20),
                             max_pixels=int(args.max_megapixels * 1e6), detect=detect_options)
        app = create_app(predictor, config)
    except (ValueError, ImportError) as error:
        print(f"serve.py: error: {error}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the page is reachable from other machines and has no authentication", args.host)
    print(f"serving {predictor.format} model {args.model_path} on http://{args.host}:{args.port}/", flush=True)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
