"""Tests for data_preprocessor.py and annotation_loaders.py: formats, validation, split, the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import data_preprocessor as dp
from annotation_loaders import ANNOTATION_FORMATS, detect_annotation_format, images_in_folder

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
    _write_image(tmp_path / "b.png")
    (tmp_path / "b.xml").write_text((tmp_path / "a.xml").read_text().split("<object><name>bad")[0] + "</annotation>")
    report = dp.load_dataset(tmp_path)
    assert report.format == "voc"
    assert [Path(sample.image_path).name for sample in report.samples] == ["b.png"]  # a.png: a rejected box
    np.testing.assert_allclose(report.samples[0].quads[0], QUAD)
    assert report.samples[0].dont_care.tolist() == [False, True]
    assert len(report.problems) == 2 and "ymax" in report.problems[0].reason
    assert report.problems[1].file.endswith("a.png") and report.problems[1].reason.startswith("image skipped")


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
    _write_image(tmp_path / "b.jpeg")
    (tmp_path / "b.json").write_text(json.dumps({"shapes": shapes[:2], "imageHeight": 120, "imageWidth": 200}))
    report = dp.load_dataset(tmp_path)
    assert report.format == "labelme"
    assert [Path(sample.image_path).name for sample in report.samples] == ["b.jpeg"]  # a.jpeg: a rejected shape
    np.testing.assert_allclose(report.samples[0].quads[1], [[100, 60], [150, 60], [150, 80], [100, 80]])
    assert report.samples[0].dont_care.tolist() == [False, True]
    assert len(report.problems) == 2 and "5 points" in report.problems[0].reason
    assert report.problems[1].reason.startswith("image skipped")


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
    assert [path.name for path in images_in_folder(tmp_path)] == ["a.BMP", "b.Png", "c.jpeg"]


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
    _write_image(tmp_path / "img_2.jpg")
    (tmp_path / "gt_img_2.txt").write_text(GOOD + "\n")
    report = dp.load_dataset(tmp_path, "icdar2015")
    assert report.counts["boxes"] == 1 and report.counts["images"] == 1  # img_1 skipped whole
    by_line = {problem.line: problem for problem in report.problems if problem.line is not None}
    assert set(by_line) == {2, 3, 5}
    assert all(problem.file.endswith("gt_img_1.txt") for problem in by_line.values())
    assert [problem.reason.split(":")[0] for problem in report.problems if problem.line is None] == ["image skipped"]
    assert "non-numeric" in by_line[2].reason and "'10,20,abc,20,90,50,10,50,x'" in by_line[2].reason
    assert "wrong coordinate count" in by_line[3].reason and "got 6" in by_line[3].reason
    assert "wrong coordinate count" in by_line[5].reason and "got 10" in by_line[5].reason


def test_geometry_problems_are_dropped_clipped_or_fixed(tmp_path):
    _icdar_folder(tmp_path, [
        GOOD,
        "10,50,90,50,90,20,10,20,ccw",          # counter-clockwise: reordered, kept
        "150,100,250,100,250,140,150,140,edge",  # partly outside: clipped, kept
        "300,300,350,300,350,330,300,330,out",   # entirely outside: dropped, the image kept
    ])
    for index, line in ((2, "10,10,50,50,50,10,10,50,bowtie"),   # self-intersecting: image skipped
                        (3, "10,10,10.5,10,10.5,10.5,10,10.5,tiny"),  # degenerate: image skipped
                        (4, "10,10,nan,10,50,50,10,50,nan"),  # non-finite: image skipped
                        (5, "10,10,inf,10,50,50,10,50,inf")):
        _write_image(tmp_path / f"img_{index}.jpg")
        (tmp_path / f"gt_img_{index}.txt").write_text(f"{line}\n")
    report = dp.load_dataset(tmp_path)
    assert [Path(sample.image_path).name for sample in report.samples] == ["img_1.jpg"]
    quads = report.samples[0].quads
    assert len(quads) == 3 and report.counts["reordered"] == 1 and report.counts["clipped"] == 1
    np.testing.assert_allclose(quads[1], QUAD)
    np.testing.assert_allclose(quads[2], [[150, 100], [199, 100], [199, 119], [150, 119]])
    reasons = {(Path(problem.file).name, problem.line): problem.reason for problem in report.problems}
    assert reasons["gt_img_1.txt", 4].startswith("outside the image")
    assert reasons["gt_img_2.txt", 1].startswith("self-intersecting")
    assert reasons["gt_img_3.txt", 1].startswith("degenerate")
    assert reasons["gt_img_4.txt", 1].startswith("non-finite") and reasons["gt_img_5.txt", 1].startswith("non-finite")
    assert all(reasons[f"img_{index}.jpg", None].startswith("image skipped") for index in range(2, 6))
    assert report.counts["dropped_boxes"] == 5 and report.counts["skipped_images"] == 4
    with pytest.raises(dp.DataError, match="--strict"):
        dp.load_dataset(tmp_path, strict=True)


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
        name, message = detect_annotation_format(images_in_folder(tmp_path / folder))
        assert name == expected and expected in message


# --------------------------------------------------------------------------- CLI and split
def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "data_preprocessor.py"), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def test_stats_cli_json_last_line(tmp_path):
    _icdar_folder(tmp_path, [GOOD, "100,60,150,60,150,80,100,80,###"])
    _write_image(tmp_path / "img_2.jpg")
    (tmp_path / "gt_img_2.txt").write_text(f"{GOOD}\n{GOOD}\n1,2,x\n")
    result = _run_cli("stats", "--data_path", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert (stats["images"], stats["boxes"], stats["dont_care"], stats["format"]) == (1, 2, 1, "icdar2015")
    assert stats["skipped"][0] == {"file": str(tmp_path / "gt_img_2.txt"), "line": 3,
                                   "reason": "wrong coordinate count: expected 8 numbers, got 2 in '1,2,x'"}
    assert stats["skipped"][1]["file"] == str(tmp_path / "img_2.jpg") and len(stats["skipped"]) == 2
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


def test_public_names_stay_importable_from_data_preprocessor():
    import augmentation
    import batch_stream
    import network_io
    import samples

    assert dp.Sample is samples.Sample and dp.DataError is samples.DataError
    assert dp.DatasetReport is samples.DatasetReport
    assert dp.AugmentConfig is augmentation.AugmentConfig and dp.make_example is augmentation.make_example
    assert dp.make_batch is batch_stream.make_batch and dp.BatchStream is batch_stream.BatchStream
    assert dp.TARGET_CHANNELS == network_io.TARGET_CHANNELS == 7
    assert all(hasattr(dp, name) for name in dp.__all__)


def test_image_with_another_formats_annotation_is_skipped_not_background(tmp_path):
    """Among plate files, an image with only a gt_ (icdar2015) or labelme file was used as background
    and reported under "fixed" only."""
    for index in range(3):
        _write_image(tmp_path / f"car_{index}.jpg")
        (tmp_path / f"car_{index}.txt").write_text("10 20 90 20 90 50 10 50 AB\n")
    _write_image(tmp_path / "odd.jpg")
    (tmp_path / "gt_odd.txt").write_text(GOOD + "\n")
    _write_image(tmp_path / "other.jpg")
    (tmp_path / "other.json").write_text(json.dumps({"shapes": [], "imageHeight": 120, "imageWidth": 200}))
    report = dp.load_dataset(tmp_path)
    assert report.format == "plate"
    assert [Path(sample.image_path).name for sample in report.samples] == ["car_0.jpg", "car_1.jpg", "car_2.jpg"]
    reasons = {Path(problem.file).name: problem.reason for problem in report.problems}
    assert "icdar2015 file gt_odd.txt" in reasons["odd.jpg"] and "labelme file other.json" in reasons["other.jpg"]
    assert not report.fixed and report.counts["skipped_images"] == 2
    with pytest.raises(dp.DataError, match="odd.jpg"):
        dp.load_dataset(tmp_path, strict=True)


def test_rehearsal_subset_is_the_share_asked_for_and_the_same_for_the_same_seed():
    chosen = dp.rehearsal_subset(10, 30, 0.5, seed=4)
    assert len(chosen) == 10 and len(set(chosen.tolist())) == 10
    assert chosen.tolist() == sorted(chosen.tolist()) and 0 <= chosen.min() and chosen.max() < 30
    assert np.array_equal(chosen, dp.rehearsal_subset(10, 30, 0.5, seed=4))
    assert not np.array_equal(chosen, dp.rehearsal_subset(10, 30, 0.5, seed=5))
    assert len(dp.rehearsal_subset(10, 30, 0.25, seed=4)) == 3  # 10 * 0.25 / 0.75
    assert len(dp.rehearsal_subset(10, 30, 0.75, seed=4)) == 30  # 30 wanted, 30 there
    assert dp.rehearsal_subset(10, 6, 0.5, seed=4).tolist() == list(range(6))  # all, at most
    assert len(dp.rehearsal_subset(10, 30, 0.0, seed=4)) == 0
    with pytest.raises(ValueError, match="share"):
        dp.rehearsal_subset(10, 30, 1.0, seed=4)
