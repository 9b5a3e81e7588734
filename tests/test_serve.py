"""serve.py: upload checks, the JSON API, and the page driven end to end in headless Chromium."""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import serve

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"]


def rectangle_predictor(images: np.ndarray):
    """A stand-in network that 'sees' one axis-aligned box: x in [W/4, 3W/4], y in [0.4H, 0.6H]."""
    batch, height, width, _ = images.shape
    rows, cols = np.mgrid[0:height // 4, 0:width // 4].astype(np.float32) * 4  # map pixel -> input px
    x0, x1, y0, y1 = width * 0.25, width * 0.75, height * 0.4, height * 0.6
    inside = (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
    score_map = np.where(inside, 0.95, 0.0).astype(np.float32)[None, ..., None].repeat(batch, 0)
    geo = np.stack([rows - y0, x1 - cols, y1 - rows, cols - x0, np.zeros_like(rows)], axis=-1)
    geo_map = np.where(inside[..., None], geo, 0.0).astype(np.float32)[None].repeat(batch, 0)
    return score_map, geo_map


def encode(image: np.ndarray, suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking PNG header that claims width × height pixels, with almost no data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + chunk(b"IEND", b""))


@pytest.fixture
def client():
    pytest.importorskip("flask")
    config = serve.ServeConfig(max_upload_bytes=200_000, max_pixels=2_000_000)
    app = serve.create_app(rectangle_predictor, config, model_info={"format": "test"})
    return app.test_client()


def post_image(client, data: bytes, name: str = "image.png", **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return client.post(f"/api/detect?{query}", data={"image": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


# --------------------------------------------------------------------------- fast


@pytest.mark.parametrize("suffix, kind", [(".jpg", "jpeg"), (".png", "png"), (".bmp", "bmp"), (".webp", "webp")])
def test_image_header_reads_type_and_size(suffix, kind):
    data = encode(np.zeros((37, 53, 3), np.uint8), suffix)
    assert serve.image_header(data) == (kind, 53, 37)


def test_image_header_refuses_non_images():
    with pytest.raises(serve.UploadError, match="not a supported image") as error:
        serve.image_header(b"%PDF-1.7 hello")
    assert error.value.status == 415
    with pytest.raises(serve.UploadError, match="damaged or cut short") as error:
        serve.image_header(b"\x89PNG\r\n\x1a\n\0\0")
    assert error.value.status == 422


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and b"EAST text detector" in page.data and b'id="threshold"' in page.data
    info = client.get("/api/info").get_json()
    assert info["model"] == {"format": "test"} and info["max_pixels"] == 2_000_000


def test_detect_returns_boxes_and_icdar_text(client):
    image = np.full((240, 320, 3), 90, np.uint8)
    response = post_image(client, encode(image, ".png"), "street.png")
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["image"] == "street.png" and (result["width"], result["height"]) == (320, 240)
    assert result["count"] == 1 == len(result["boxes"])
    points = np.array(result["boxes"][0]["points"])
    np.testing.assert_allclose(points, [[80, 96], [240, 96], [240, 144], [80, 144]], atol=4)
    assert result["icdar"].count("\r\n") == 1 and len(result["icdar"].split(",")) == 8
    assert result["score_map_thresh"] == 0.8


def test_threshold_parameter(client):
    data = encode(np.full((64, 64, 3), 90, np.uint8), ".jpg")
    assert post_image(client, data, score_map_thresh=0.99).get_json()["count"] == 0
    response = post_image(client, data, score_map_thresh="abc")
    assert response.status_code == 400 and "score_map_thresh" in response.get_json()["error"]
    assert post_image(client, data, box_thresh=1.5).status_code == 400
    assert post_image(client, data, core_thresh=1.5).status_code == 400


def test_serve_defaults_come_from_detect_options_and_test_scales_merge():
    import postprocess

    args = serve.parse_args([])
    defaults = postprocess.DetectOptions()
    assert (args.score_map_thresh, args.box_thresh, args.nms_thres) == (
        defaults.score_map_thresh, defaults.box_thresh, defaults.nms_thres)
    # core_thresh: the one given, else the checkpoint's recorded one, else off, as in EAST-tf2.
    assert args.core_thresh is None and serve.parse_args(["--core_thresh=0.5"]).core_thresh == 0.5
    assert postprocess.settle_core_thresh(None, {}) == defaults.core_thresh == 0.0
    assert postprocess.settle_core_thresh(None, {"core_thresh": None}) == 0.0
    assert postprocess.settle_core_thresh(None, {"core_thresh": 0.75}) == 0.75
    assert postprocess.settle_core_thresh(0.0, {"core_thresh": 0.75}) == 0.0
    # max_side_len: the one given, else the checkpoint's recorded scale, else DetectOptions' default.
    assert args.max_side_len is None
    assert postprocess.settle_max_side_len(None, {}) == defaults.max_side_len == 2400
    assert postprocess.settle_max_side_len(None, {"max_side_len": 352}) == 352
    assert postprocess.settle_max_side_len(640, {"max_side_len": 352}) == 640
    # zoom_when_empty: 2, 3, 4 times the side for an image without a box at the recorded scale, one run otherwise.
    assert args.zoom_when_empty is None and serve.parse_args(["--zoom_when_empty=1.5,3"]).zoom_when_empty == "1.5,3"
    assert postprocess.settle_zoom_when_empty(None, False, "") == postprocess.ZOOM_WHEN_EMPTY == (2.0, 3.0, 4.0)
    assert postprocess.settle_zoom_when_empty(None, True, "") == postprocess.settle_zoom_when_empty(None, False, "160,320") == ()
    assert postprocess.settle_zoom_when_empty("1.5,3", True, "") == (1.5, 3.0)
    assert postprocess.settle_zoom_when_empty(1, False, "") == ()
    # zoom_confirm_iou: DetectOptions' (postprocess.ZOOM_CONFIRM_IOU), else as given.
    assert args.zoom_confirm_iou == defaults.zoom_confirm_iou == postprocess.ZOOM_CONFIRM_IOU
    assert serve.parse_args(["--zoom_confirm_iou=0"]).zoom_confirm_iou == 0.0
    # flip_test: on at the scale a checkpoint records, one pass otherwise, else as given.
    assert args.flip_test is None and serve.parse_args(["--noflip_test"]).flip_test is False
    assert serve.parse_args(["--flip_test"]).flip_test is True
    assert postprocess.settle_flip_test(None, False, "", {"max_side_len": 352}) is True
    assert not postprocess.settle_flip_test(None, False, "", {}) and not postprocess.settle_flip_test(
        None, True, "", {"max_side_len": 352}) and not postprocess.settle_flip_test(None, False, "160", {"max_side_len": 352})
    assert postprocess.settle_flip_test(True, True, "", {}) is True
    # serve.py settles all four at once, as eval.py does: the model's scale with both looks and its
    # recorded core filter, or what is given.
    model_info = {"max_side_len": 352, "core_thresh": 0.75}
    recorded = postprocess.settle_for_model(defaults, None, None, None, None, model_info)
    assert (recorded.max_side_len, recorded.zoom_when_empty, recorded.flip_test, recorded.core_thresh) == (
        352, (2.0, 3.0, 4.0), True, 0.75)
    given = postprocess.settle_for_model(defaults, 640, None, None, 0.0, model_info)
    assert (given.max_side_len, given.zoom_when_empty, given.flip_test, given.core_thresh) == (640, (), False, 0.0)
    assert serve.ServeConfig().detect == defaults
    image = np.full((240, 320, 3), 90, np.uint8)
    single = serve.detect(image, rectangle_predictor, defaults)
    merged = serve.detect(image, rectangle_predictor, postprocess.DetectOptions(test_scales=(160, 320)))
    assert single["count"] == merged["count"] == 1  # both scales see the box; the merge keeps one
    np.testing.assert_allclose(merged["boxes"][0]["points"], single["boxes"][0]["points"], atol=8)
    with pytest.raises(serve.UploadError, match="nms_thres"):
        serve.request_options({"nms_thres": "2"}, defaults)


@pytest.mark.parametrize("data, status, message", [
    (b"", 400, "empty"),
    (b"hello, this is text\n" * 10, 415, "not a supported image"),
    (png_bomb(30000, 30000), 413, "900.0 megapixels"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 40, 422, "damaged or cut short"),
])
def test_bad_uploads_get_clear_errors(client, data, status, message):
    response = post_image(client, data, "upload.bin")
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_truncated_image_is_refused(client):
    data = encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8), ".png")
    response = post_image(client, data[:300], "cut.png")
    assert response.status_code == 422 and "cannot be decoded" in response.get_json()["error"]


def test_oversized_upload_is_refused(client):
    response = post_image(client, b"\x89PNG" + os.urandom(400_000), "big.png")
    assert response.status_code == 413 and "MB" in response.get_json()["error"]


def test_missing_field(client):
    response = client.post("/api/detect", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and "image" in response.get_json()["error"]


def test_cli_reports_a_missing_model(tmp_path, capsys):
    assert serve.main(["--model_path", str(tmp_path / "none.onnx")]) == 2
    assert "serve.py: error:" in capsys.readouterr().err


# --------------------------------------------------------------------------- slow: real browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve.py exited with {process.returncode}: {process.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/api/info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"serve.py did not answer at {url} within {timeout:.0f} s")


@pytest.fixture
def served_model(tmp_path):
    """serve.py in a subprocess on a free loopback port, with a tiny ONNX model that detects on the plate."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")
    pytest.importorskip("tf2onnx", reason="the browser test exports an ONNX model (pip install tf2onnx)")
    pytest.importorskip("onnxruntime", reason="the browser test serves an ONNX model (pip install onnxruntime)")
    import export
    import postprocess
    import synthetic_data
    from test_export import make_detecting_model

    image_bgr, _, _ = synthetic_data.generate_plate_scene(synthetic_data.image_rng(7, 0),
                                                          synthetic_data.PlateSceneConfig(width=480, height=320))
    image_path = tmp_path / "plate.jpg"
    cv2.imwrite(str(image_path), image_bgr)
    resized, _ = postprocess.resize_for_inference(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    network = make_detecting_model(resized[None].astype(np.float32))
    model_path = export.export_model(network, tmp_path / "model", "onnx")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "serve.py", f"--model_path={model_path}", f"--port={port}",
                                "--num_threads=1"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_server(url, process)
        yield {"url": url, "image_path": image_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_page_in_headless_chromium(served_model, tmp_path):
    from playwright.sync_api import sync_playwright

    url, image_path = served_model["url"], served_model["image_path"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.set_input_files("#files", str(image_path))
            page.wait_for_selector("canvas.overlay[data-ready='1']", timeout=60_000)
            shown = int(page.text_content("#result-0 .box-count"))
            assert page.eval_on_selector("canvas.overlay", "c => [c.width, c.height]") == [480, 320]
            assert page.locator("#result-0 ol.boxes li").count() == shown

            with open(image_path, "rb") as handle:
                api = page.request.post(url + "/api/detect", multipart={
                    "image": {"name": "plate.jpg", "mimeType": "image/jpeg", "buffer": handle.read()}})
            assert api.ok
            assert shown == api.json()["count"] >= 1
            page.screenshot(path=str(tmp_path / "page.png"))

            # The slider re-runs detection with the new threshold.
            page.eval_on_selector("#threshold", "s => { s.value = '0.99'; s.dispatchEvent(new Event('input')); }")
            page.wait_for_function("document.getElementById('threshold-value').textContent === '0.99'")
            with open(image_path, "rb") as handle:
                strict = page.request.post(url + "/api/detect?score_map_thresh=0.99", multipart={
                    "image": {"name": "plate.jpg", "mimeType": "image/jpeg", "buffer": handle.read()}}).json()
            page.wait_for_function(
                f"(document.querySelector('#result-0 .box-count') || {{}}).textContent === '{strict['count']}'"
                " && document.querySelector('#status').textContent.indexOf('detecting') < 0", timeout=60_000)

            # A non-image gets its error message in the page, and the server keeps serving.
            text_file = tmp_path / "notes.txt"
            text_file.write_text("not an image\n")
            page.set_input_files("#files", str(text_file))
            page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
            assert "not a supported image" in page.text_content("#error")
            assert page.request.get(url + "/api/info").ok
        finally:
            browser.close()
