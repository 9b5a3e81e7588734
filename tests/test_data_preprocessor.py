"""Tests for data_preprocessor.py and annotation_loaders.py: formats, validation, split, augmentation, batches."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import data_preprocessor as dp
from annotation_loaders import ANNOTATION_FORMATS, detect_format, list_images

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_HW = (120, 200)
# Clockwise from the top-left, inside a 200 x 120 image.
QUAD = [[10, 20], [90, 20], [90, 50], [10, 50]]


def _write_image(path: Path, hw=IMAGE_HW, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*hw, 3), value, np.uint8))
    return path


def _flat(quad) -> list:
    return [float(v) for point in quad for v in point]


def _quads(report) -> list:
    return [sample.quads.tolist() for sample in report.samples]


# --------------------------------------------------------------------------- formats
def test_icdar2015_bom_commas_and_dont_care(tmp_path):
    _write_image(tmp_path / "img_1.jpg")
    lines = [",".join(str(int(v)) for v in _flat(QUAD)) + ",Hello, world", "100,60,150,60,150,80,100,80,###"]
    (tmp_path / "gt_img_1.txt").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    report = dp.load_dataset(tmp_path)
    assert report.format == "icdar2015" and "icdar2015" in report.detection
    sample = report.samples[0]
    assert sample.texts == ("Hello, world", "###")
    assert sample.dont_care.tolist() == [False, True]
    assert sample.quads.dtype == np.float32 and sample.quads.shape == (2, 4, 2)
    np.testing.assert_allclose(sample.quads[0], QUAD)
    assert report.counts["boxes"] == 2 and report.counts["dont_care"] == 1 and not report.problems


def test_plate_format_with_and_without_text(tmp_path):
    _write_image(tmp_path / "car.JPG")
    (tmp_path / "car.txt").write_text(" ".join(str(int(v)) for v in _flat(QUAD)) + " ABC123\n"
                                      + "100 60 150 60 150 80 100 80\n")
    report = dp.load_dataset(tmp_path)
    assert report.format == "plate"
    assert report.samples[0].texts == ("ABC123", "")
    np.testing.assert_allclose(report.samples[0].quads[0], QUAD)


def test_voc_rectangles_and_difficult(tmp_path):
    _write_image(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text(
        "<annotation><object><name>plate</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>20</ymin>"
        "<xmax>90</xmax><ymax>50</ymax></bndbox></object>"
        "<object><name>x</name><difficult>1</difficult><bndbox><xmin>100</xmin><ymin>60</ymin>"
        "<xmax>150</xmax><ymax>80</ymax></bndbox></object>"
        "<object><name>bad</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax></bndbox></object></annotation>")
    report = dp.load_dataset(tmp_path)
    assert report.format == "voc"
    np.testing.assert_allclose(report.samples[0].quads[0], QUAD)
    assert report.samples[0].dont_care.tolist() == [False, True]
    assert len(report.problems) == 1 and "ymax" in report.problems[0].reason


def test_yolo_normalized_boxes_and_class_filter(tmp_path):
    _write_image(tmp_path / "images" / "a.jpg")
    # cx, cy, w, h of QUAD normalized by 200 x 120, plus an oriented (9-value) line of class 1.
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(
        "0 0.25 0.291666667 0.4 0.25\n1 0.5 0.5 0.75 0.5 0.75 0.6666 0.5 0.6666\n")
    report = dp.load_dataset(tmp_path)
    assert report.format == "yolo"
    np.testing.assert_allclose(report.samples[0].quads[0], QUAD, atol=1e-3)
    assert report.samples[0].quads.shape == (2, 4, 2)
    filtered = dp.load_dataset(tmp_path, "yolo", yolo_classes=[1])
    assert filtered.samples[0].texts == ("1",)


def test_labelme_polygon_and_rectangle(tmp_path):
    _write_image(tmp_path / "a.jpeg")
    shapes = [{"label": "A1", "shape_type": "polygon", "points": QUAD},
              {"label": "###", "shape_type": "rectangle", "points": [[150, 80], [100, 60]]},
              {"label": "five", "shape_type": "polygon", "points": QUAD + [[5, 5]]}]
    (tmp_path / "a.json").write_text(json.dumps({"shapes": shapes, "imageHeight": 120, "imageWidth": 200}))
    report = dp.load_dataset(tmp_path)
    assert report.format == "labelme"
    np.testing.assert_allclose(report.samples[0].quads[1], [[100, 60], [150, 60], [150, 80], [100, 80]])
    assert report.samples[0].dont_care.tolist() == [False, True]
    assert len(report.problems) == 1 and "5 points" in report.problems[0].reason


def test_ccpd_corners_from_file_name(tmp_path):
    # CCPD lists the corners bottom-right first; the loader must hand them back clockwise from the top-left.
    _write_image(tmp_path / "025-95_113-10&20_90&50-90&50_10&50_10&20_90&20-0_0_22_27_27_33_16-37-15.jpg")
    report = dp.load_dataset(tmp_path)
    assert report.format == "ccpd"
    np.testing.assert_allclose(report.samples[0].quads[0], QUAD)
    assert report.samples[0].texts == ("皖AY339S",)


def test_bmp_and_upper_case_extensions_are_images(tmp_path):
    for name in ("a.BMP", "b.Png", "c.jpeg"):
        _write_image(tmp_path / name)
    assert [path.name for path in list_images(tmp_path)] == ["a.BMP", "b.Png", "c.jpeg"]


def test_every_format_is_registered():
    assert set(ANNOTATION_FORMATS) == {"icdar2015", "plate", "voc", "yolo", "labelme", "ccpd"}
    assert dp.ANNOTATION_FORMATS is ANNOTATION_FORMATS


# --------------------------------------------------------------------------- validation
def _icdar_folder(tmp_path: Path, lines: list[str], image_hw=IMAGE_HW) -> Path:
    _write_image(tmp_path / "img_1.jpg", image_hw)
    (tmp_path / "gt_img_1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


GOOD = "10,20,90,20,90,50,10,50,ok"


def test_malformed_lines_are_reported_with_file_line_and_text(tmp_path):
    _icdar_folder(tmp_path, [GOOD, "10,20,abc,20,90,50,10,50,x", "10,20,90,20,90,50,word", "",
                             "1,2,3,4,5,6,7,8,9,10"])
    report = dp.load_dataset(tmp_path, "icdar2015")
    assert report.counts["boxes"] == 1
    by_line = {problem.line: problem for problem in report.problems}
    assert set(by_line) == {2, 3, 5}
    assert all(problem.file.endswith("gt_img_1.txt") for problem in report.problems)
    assert "non-numeric" in by_line[2].reason and "'10,20,abc,20,90,50,10,50,x'" in by_line[2].reason
    assert "wrong coordinate count" in by_line[3].reason and "got 6" in by_line[3].reason
    assert "wrong coordinate count" in by_line[5].reason and "got 10" in by_line[5].reason


def test_geometry_problems_are_dropped_clipped_or_fixed(tmp_path):
    _icdar_folder(tmp_path, [
        GOOD,
        "10,50,90,50,90,20,10,20,ccw",          # counter-clockwise: reordered, kept
        "150,100,250,100,250,140,150,140,edge",  # partly outside: clipped, kept
        "300,300,350,300,350,330,300,330,out",   # entirely outside: dropped
        "10,10,50,50,50,10,10,50,bowtie",        # self-intersecting: dropped
        "10,10,10.5,10,10.5,10.5,10,10.5,tiny",  # degenerate: dropped
    ])
    report = dp.load_dataset(tmp_path)
    quads = report.samples[0].quads
    assert len(quads) == 3 and report.counts["reordered"] == 1 and report.counts["clipped"] == 1
    np.testing.assert_allclose(quads[1], QUAD)
    np.testing.assert_allclose(quads[2], [[150, 100], [199, 100], [199, 119], [150, 119]])
    reasons = {problem.line: problem.reason for problem in report.problems}
    assert reasons[4].startswith("outside the image")
    assert reasons[5].startswith("self-intersecting")
    assert reasons[6].startswith("degenerate")
    assert report.counts["dropped_boxes"] == 3


def test_unreadable_truncated_and_unannotated_images(tmp_path):
    _icdar_folder(tmp_path, [GOOD])
    (tmp_path / "img_2.jpg").write_bytes(b"not an image")
    full = (tmp_path / "img_1.jpg").read_bytes()
    (tmp_path / "img_3.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "gt_img_3.txt").write_text(GOOD)
    _write_image(tmp_path / "img_4.png")
    report = dp.load_dataset(tmp_path)
    reasons = {Path(problem.file).name: problem.reason for problem in report.problems}
    assert reasons["img_2.jpg"].startswith("unreadable image")
    assert reasons["img_3.jpg"].startswith("truncated image")
    assert [Path(sample.image_path).name for sample in report.samples] == ["img_1.jpg", "img_4.png"]
    assert report.samples[1].quads.shape == (0, 4, 2) and report.counts["unannotated"] == 1
    skipped = dp.load_dataset(tmp_path, skip_unannotated=True)
    assert [Path(sample.image_path).name for sample in skipped.samples] == ["img_1.jpg"]


def test_image_whose_annotation_is_unusable_is_skipped_not_background(tmp_path):
    _write_image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text("<annotation><object><name>x</name>")
    with pytest.raises(dp.DataError, match="no usable images"):
        dp.load_dataset(tmp_path, "voc")
    _write_image(tmp_path / "b.jpg")
    report_problems = dp.load_dataset(tmp_path, "voc").problems
    assert [Path(problem.file).name for problem in report_problems] == ["a.xml", "a.jpg"]
    assert report_problems[0].reason.startswith("malformed XML") and report_problems[0].line == 1


def test_strict_makes_problems_fatal(tmp_path):
    _icdar_folder(tmp_path, [GOOD, "10,20,abc,20,90,50,10,50,x"])
    with pytest.raises(dp.DataError, match=r"gt_img_1\.txt:2: malformed line"):
        dp.load_dataset(tmp_path, strict=True)
    assert issubclass(dp.DataError, ValueError)


def test_bad_folders_and_formats_raise_data_error(tmp_path):
    with pytest.raises(dp.DataError, match="not a folder"):
        dp.load_dataset(tmp_path / "missing")
    with pytest.raises(dp.DataError, match="no images"):
        dp.load_dataset(tmp_path)
    _write_image(tmp_path / "a.jpg")
    with pytest.raises(dp.DataError, match="cannot detect"):
        dp.load_dataset(tmp_path)
    with pytest.raises(dp.DataError, match="annotation_format must be one of"):
        dp.load_dataset(tmp_path, "coco")


def test_auto_detection_tells_plate_from_yolo_and_icdar(tmp_path):
    _write_image(tmp_path / "p" / "a.jpg")
    (tmp_path / "p" / "a.txt").write_text("10 20 90 20 90 50 10 50 X\n")
    _write_image(tmp_path / "y" / "a.jpg")
    (tmp_path / "y" / "a.txt").write_text("0 0.5 0.5 0.2 0.1\n")
    _write_image(tmp_path / "i" / "a.jpg")
    (tmp_path / "i" / "gt_a.txt").write_text(GOOD)
    for folder, expected in (("p", "plate"), ("y", "yolo"), ("i", "icdar2015")):
        name, message = detect_format(list_images(tmp_path / folder))
        assert name == expected and expected in message


# --------------------------------------------------------------------------- CLI and split
def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "data_preprocessor.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_stats_cli_json_last_line(tmp_path):
    _icdar_folder(tmp_path, [GOOD, "100,60,150,60,150,80,100,80,###", "1,2,x"])
    result = _run_cli("stats", "--data_path", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert (stats["images"], stats["boxes"], stats["dont_care"], stats["format"]) == (1, 2, 1, "icdar2015")
    assert stats["skipped"] == [{"file": str(tmp_path / "gt_img_1.txt"), "line": 3,
                                 "reason": "wrong coordinate count: expected 8 numbers, got 2 in '1,2,x'"}]
    failed = _run_cli("stats", "--data_path", str(tmp_path), "--strict")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr and "--strict" in failed.stderr


def _plate_folder(folder: Path, count: int) -> Path:
    for index in range(count):
        _write_image(folder / f"car_{index:02d}.jpg", (40, 60), value=index)
        (folder / f"car_{index:02d}.txt").write_text("5 5 30 5 30 20 5 20 AB\n")
    return folder


def test_split_is_deterministic_and_refuses_to_overwrite(tmp_path):
    data = _plate_folder(tmp_path / "data", 10)
    first = dp.split_dataset(data, tmp_path / "a" / "train", tmp_path / "a" / "test", ratio=0.8, seed=3)
    assert (first["train_images"], first["test_images"], first["train_annotations"]) == (8, 2, 8)
    dp.split_dataset(data, tmp_path / "b" / "train", tmp_path / "b" / "test", ratio=0.8, seed=3)
    names = {part: sorted(path.name for path in (tmp_path / "a" / part).iterdir()) for part in ("train", "test")}
    assert names["train"] == sorted(path.name for path in (tmp_path / "b" / "train").iterdir())
    assert len(names["test"]) == 4 and not set(names["train"]) & set(names["test"])
    # Fixed expectation: the split must not depend on the machine or on the file system's order.
    assert [name for name in names["test"] if name.endswith(".jpg")] == ["car_03.jpg", "car_08.jpg"]
    with pytest.raises(dp.DataError, match="not empty.*--overwrite"):
        dp.split_dataset(data, tmp_path / "a" / "train", tmp_path / "a" / "test", seed=4)
    other = dp.split_dataset(data, tmp_path / "a" / "train", tmp_path / "a" / "test", seed=4, overwrite=True)
    assert other["train_images"] == 8 and len(list((tmp_path / "a" / "train").glob("*.jpg"))) == 8


def test_split_cli_prints_counts(tmp_path):
    data = _plate_folder(tmp_path / "data", 5)
    args = ["split", "--data_path", str(data), "--train_dir", str(tmp_path / "tr"), "--test_dir", str(tmp_path / "te"),
            "--ratio", "0.6", "--seed", "0"]
    result = _run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "train: 3 images" in result.stdout and "test: 2 images" in result.stdout
    again = _run_cli(*args)
    assert again.returncode == 1 and "--overwrite" in again.stderr and "Traceback" not in again.stderr


# --------------------------------------------------------------------------- augmentation
def _marked_scene(folder: Path, size_hw=(360, 640), suffix: str = "png") -> dp.Sample:
    """A PNG whose blue channel is 255 exactly inside its (rotated) text quads, noise elsewhere."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (*size_hw, 3), dtype=np.uint8)
    quads = np.array([[[40, 40], [240, 60], [236, 100], [36, 80]],
                      [[300, 200], [600, 170], [606, 230], [306, 260]],
                      [[100, 250], [200, 250], [200, 300], [100, 300]]], np.float32)
    blue = np.zeros(size_hw, np.uint8)
    cv2.fillPoly(blue, np.round(quads).astype(np.int32), 255)
    image[..., 0] = blue
    cv2.imwrite(str(folder / f"img_1.{suffix}"), image)
    lines = [",".join(str(int(v)) for v in quad.ravel()) + ",text" for quad in quads]
    (folder / "gt_img_1.txt").write_text("\n".join(lines))
    return dp.load_dataset(folder).samples[0]


@pytest.mark.parametrize("suffix", ["png", "jpg"])  # odd size: JPEGs decoded at 1/2, 1/4 size round up
def test_augmentation_keeps_quads_on_their_pixels(tmp_path, suffix):
    sample = _marked_scene(tmp_path, (361, 641), suffix)
    with_text = backgrounds = 0
    for seed in range(24):
        # Every fourth example asks for a text-free crop.
        config = dp.AugmentConfig(input_size=256, background_ratio=float(seed % 4 == 0))
        example = dp.make_example(sample, np.random.default_rng(seed), config)
        image, quads = example["image"], example["quads"]
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        marked = image[..., 2] > 127  # blue, now the last (RGB) channel
        drawn = np.zeros((256, 256), np.uint8)
        cv2.fillPoly(drawn, np.round(quads).astype(np.int32), 1)
        if len(quads) == 0:
            backgrounds += 1
            assert marked.mean() < 0.002 and example["score_map"].max() == 0
            continue
        with_text += 1
        iou = (marked & (drawn > 0)).sum() / max(1, (marked | (drawn > 0)).sum())
        assert iou > 0.85, (seed, iou)
        # Every positive score-map pixel samples a marked input pixel (map px (r, c) = input (4c, 4r)).
        rows, cols = np.nonzero(example["score_map"][..., 0] > 0)
        assert rows.size > 0 and marked[rows * 4, cols * 4].mean() > 0.95
    assert (with_text, backgrounds) == (18, 6)


def test_max_text_size_and_max_image_large_side_downscale(tmp_path):
    sample = _marked_scene(tmp_path)
    config = dp.AugmentConfig(input_size=128, background_ratio=0.0, random_scale=(3.0,), max_text_size=100)
    for seed in range(5):
        quads = dp.make_example(sample, np.random.default_rng(seed), config)["quads"]
        extent = (quads.max(axis=1) - quads.min(axis=1)).max()
        assert extent <= 100.5
    # 640 px wide -> 320: the crop then fits the 512 px input unscaled, so quads shrink by 0.5 +- 10 %.
    config = dp.AugmentConfig(background_ratio=0.0, random_scale=(1.0,), max_image_large_side=320)
    for seed in range(5):
        quads = dp.make_example(sample, np.random.default_rng(seed), config)["quads"]
        # Each output quad is one of the source quads (all of different sizes) scaled by 0.5 +- 10 %.
        ratios = np.ptp(quads, axis=1)[:, None, :] / np.ptp(sample.quads, axis=1)[None, :, :]
        matches = np.all((0.44 < ratios) & (ratios < 0.56), axis=2)
        assert len(quads) and matches.any(axis=1).all(), ratios


def test_make_example_output_shapes_and_rgb(tmp_path):
    sample = _marked_scene(tmp_path)
    example = dp.make_example(sample, np.random.default_rng(1), dp.AugmentConfig(input_size=128))
    assert example["score_map"].shape == (32, 32, 1) and example["geo_map"].shape == (32, 32, 5)
    assert example["training_mask"].shape == (32, 32, 1)
    assert example["image"].shape == (128, 128, 3) and example["image"].dtype == np.uint8
    assert all(example[key].dtype == np.float32 for key in ("score_map", "geo_map", "training_mask"))


# --------------------------------------------------------------------------- batches
@pytest.fixture
def small_dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    sample = _marked_scene(folder)
    broken = dp.Sample(str(folder / "gone.jpg"), None, np.zeros((0, 4, 2), np.float32), np.zeros(0, bool), (),
                       (100, 100))
    return [sample, broken, sample]


def test_make_batch_is_pure_and_skips_unreadable_images(small_dataset, caplog):
    config = dp.AugmentConfig(input_size=64)
    images, targets = dp.make_batch(small_dataset, 7, 3, 4, config)
    assert images.shape == (4, 64, 64, 3) and targets.shape == (4, 16, 16, 7)
    assert images.dtype == np.uint8 and targets.dtype == np.float32
    again_images, again_targets = dp.make_batch(small_dataset, 7, 3, 4, config)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(targets, again_targets)
    assert not np.array_equal(images, dp.make_batch(small_dataset, 7, 4, 4, config)[0])
    # Every third position of the epoch order hits the missing file; it is skipped, not fatal.
    for step in range(3):
        dp.make_batch(small_dataset, 7, step, 4, config)
    assert "gone.jpg" in caplog.text


@pytest.mark.parametrize("nb_workers, shared_memory", [(1, True), (3, True), (2, False)])
def test_batch_stream_matches_make_batch_whatever_the_workers(small_dataset, nb_workers, shared_memory, monkeypatch):
    if not shared_memory:  # as where /dev/shm is too small: batches come back through pipes
        monkeypatch.setattr(dp, "_shared_memory_fits", lambda nbytes: False)
    config = dp.AugmentConfig(input_size=64)
    expected = [dp.make_batch(small_dataset, 5, step, 2, config) for step in (10, 11, 12, 13)]
    with dp.BatchStream(small_dataset, seed=5, start_step=10, batch_size=2, config=config,
                        nb_workers=nb_workers) as stream:
        got = [next(stream) for _ in expected]
    for (images, targets), (want_images, want_targets) in zip(got, expected):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(targets, want_targets)


def test_batch_stream_reports_a_dataset_without_usable_images_and_stops_when_closed(small_dataset):
    with dp.BatchStream(small_dataset[1:2], seed=0, batch_size=1, config=dp.AugmentConfig(input_size=64),
                        nb_workers=1) as stream:
        with pytest.raises(dp.DataError, match="no usable training example"):
            next(stream)
    stream = dp.BatchStream(small_dataset, seed=0, batch_size=1, config=dp.AugmentConfig(input_size=64), nb_workers=1)
    next(stream)
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


def test_batch_stream_in_process_is_a_generator_for_keras(small_dataset):
    import types

    stream = dp.BatchStream(small_dataset, seed=0, batch_size=2, config=dp.AugmentConfig(input_size=64),
                            nb_workers=0)
    generator = iter(stream)
    assert isinstance(generator, types.GeneratorType)
    images, targets = next(generator)
    np.testing.assert_array_equal(images, dp.make_batch(small_dataset, 0, 0, 2, dp.AugmentConfig(input_size=64))[0])
    stream.close()


def test_bad_batch_arguments_raise():
    with pytest.raises(ValueError, match="samples"):
        dp.make_batch([], 0, 0, 2, dp.AugmentConfig())
    with pytest.raises(ValueError, match="input_size"):
        dp.AugmentConfig(input_size=30)


# --------------------------------------------------------------------------- real data
@pytest.mark.parametrize("subset, images, boxes, dont_care", [
    ("icdar_real/train", 10, 82, 61),
    ("icdar_real/test", 5, 73, 27),
    ("plates_dev", 222, 222, 0),
])
def test_real_sets_match_their_source_counts(shared_data, subset, images, boxes, dont_care):
    report = dp.load_dataset(shared_data / subset, strict=True)
    assert (report.counts["images"], report.counts["boxes"], report.counts["dont_care"]) == (images, boxes, dont_care)
    assert report.format == ("plate" if subset == "plates_dev" else "icdar2015")
