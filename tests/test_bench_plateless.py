"""bench/bench_plateless.py: the plate-free band of a photo, by hand-computed rows, and the band files."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_plateless  # noqa: E402


def _plate(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.mark.parametrize("plates, expected", [
    ([_plate(100, 400, 200, 440)], (0, 360)),        # above: 400 - 40 rows of margin; below: 480 .. 720
    ([_plate(100, 200, 200, 240)], (280, 720)),      # below: 240 + 40 .. 720; above only 0 .. 160
    ([_plate(0, 200, 10, 300), _plate(500, 320, 600, 340)], (440, 720)),  # margin: the tallest plate, 100
    ([_plate(0, 300, 10, 420)], None),               # above 0 .. 180, below 540 .. 720: both < 0.3 * 720
])
def test_the_band_is_the_taller_side_one_plate_height_away(plates, expected):
    assert bench_plateless.plate_free_band((720, 1280), np.array(plates, np.float32)) == expected


def test_bands_are_written_with_the_photos_own_pixels(tmp_path):
    images, out = tmp_path / "images", tmp_path / "bands"
    images.mkdir()
    photo = np.random.default_rng(0).integers(0, 256, (100, 60, 3), np.uint8)
    cv2.imwrite(str(images / "car.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 100])
    (images / "car.txt").write_text("10 70 50 70 50 80 10 80 PLATE\n")  # plate rows 70..80: band 0..60
    (images / "tiny.jpg").write_bytes((images / "car.jpg").read_bytes())
    (images / "tiny.txt").write_text("10 30 50 30 50 70 10 70 PLATE\n")  # 40 rows tall: no band of 30 rows

    cv2.imwrite(str(images / "van.png"), photo)  # any image type the loader reads, not only JPEG
    (images / "van.txt").write_text("10 20 50 20 50 30 10 30 PLATE\n")  # plate rows 20..30: band 40..100

    assert bench_plateless.write_plate_dev_bands(images, out) == 2
    band = cv2.imread(str(out / "car.png"))
    np.testing.assert_array_equal(band, cv2.imread(str(images / "car.jpg"))[:60])
    np.testing.assert_array_equal(cv2.imread(str(out / "van.png")), photo[40:])
    assert not (out / "tiny.png").exists()
