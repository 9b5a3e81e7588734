"""EXIF orientation: every image reader sees a JPEG as it is displayed (as labelling tools show it).

The JPEG here is stored 100 px wide and 40 px high with a white left band, plus an EXIF
orientation tag 6 ("rotate 90 degrees clockwise to display"): displayed, it is 40 x 100 with the
white band on top. The training loader (image size check, full and reduced decode), eval, serve
and export's calibration must all agree on that, or boxes drawn on the displayed photo land on
the wrong pixels.
"""
import struct

import cv2
import numpy as np
import pytest

import augmentation
import data_preprocessor
import eval as east_eval
import export
import samples
import serve

STORED_HW = (40, 100)
DISPLAYED_HW = (100, 40)


def jpeg_with_orientation(image_bgr: np.ndarray, orientation: int) -> bytes:
    """``image_bgr`` JPEG-encoded with a minimal APP1 Exif segment (big-endian TIFF, one IFD entry
    0x0112 SHORT) right after the start-of-image marker."""
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    data = encoded.tobytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


@pytest.fixture
def rotated_jpeg(tmp_path):
    image = np.zeros((*STORED_HW, 3), np.uint8)
    image[:, :20] = 255  # stored: white left band; displayed (rotated 90 cw): white top band
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_with_orientation(image, 6))
    return path


def _white_band_on_top(image: np.ndarray) -> bool:
    gray = image if image.ndim == 2 else image.mean(axis=2)
    return gray[: gray.shape[0] // 10].mean() > 200 and gray[gray.shape[0] // 2:].mean() < 50


def test_every_reader_applies_the_orientation(rotated_jpeg):
    assert cv2.imread(str(rotated_jpeg), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION).shape[:2] == STORED_HW
    assert samples.inspect_image(rotated_jpeg) == (DISPLAYED_HW, None)
    full, factor = augmentation._read_image(str(rotated_jpeg), DISPLAYED_HW, 1.0)
    assert factor == 1 and full.shape[:2] == DISPLAYED_HW and _white_band_on_top(full)
    reduced, factor = augmentation._read_image(str(rotated_jpeg), DISPLAYED_HW, 0.5)
    assert factor == 2 and reduced.shape[:2] == (50, 20) and _white_band_on_top(reduced)
    image_rgb = east_eval.read_image_rgb(rotated_jpeg)
    assert image_rgb.shape[:2] == DISPLAYED_HW and _white_band_on_top(image_rgb)
    upload = serve.decode_upload(rotated_jpeg.read_bytes(), serve.ServeConfig())
    assert upload.shape[:2] == DISPLAYED_HW and _white_band_on_top(upload)
    calibration = export.load_calibration_images(rotated_jpeg.parent, max_images=1, max_side_len=128)
    assert calibration[0].shape[1] > calibration[0].shape[2]  # portrait, as displayed


def test_a_box_drawn_on_the_displayed_photo_covers_the_band(rotated_jpeg):
    """An annotation made on the displayed photo: the band is the top 20 rows, full width."""
    (rotated_jpeg.parent / "photo.txt").write_text("0 0 39 0 39 19 0 19 BAND\n")
    report = data_preprocessor.load_dataset(rotated_jpeg.parent, "plate")
    sample = report.samples[0]
    assert sample.image_hw == DISPLAYED_HW and not report.problems and not report.fixed
    image, _ = augmentation._read_image(sample.image_path, sample.image_hw, 1.0)
    x0, y0 = sample.quads[0].min(axis=0).astype(int)
    x1, y1 = sample.quads[0].max(axis=0).astype(int)
    assert image[y0:y1 + 1, x0:x1 + 1].mean() > 200
