"""bench/bench_quality.py: the failure classes on hand-made boxes, and settings taken from demo.py."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_quality  # noqa: E402
import demo  # noqa: E402
import postprocess  # noqa: E402


def _box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


PLATE = np.array([_box(0, 0, 100, 40)], np.float32)
CARE = np.array([False])


@pytest.mark.parametrize("detections, all_correct, expected", [
    ([_box(0, 0, 100, 40)], True, "correct"),
    ([], False, "missed"),
    ([_box(300, 300, 400, 340)], False, "missed"),                 # IoU 0
    ([_box(0, 0, 50, 20)], False, "partial-small"),                # IoU 1000 / 4000 = 0.25
    ([_box(0, 0, 200, 80)], False, "partial-large"),               # IoU 4000 / 16000 = 0.25
    ([_box(0, 0, 100, 40), _box(300, 300, 400, 340)], False, "extra"),
    ([_box(0, 0, 100, 36)], False, "other"),                       # IoU 0.9 but the scorer said no
])
def test_failure_classes(detections, all_correct, expected):
    det_quads = np.array(detections, np.float32).reshape(-1, 4, 2)
    assert bench_quality.classify_image(PLATE, CARE, det_quads, all_correct) == expected


def test_a_missed_plate_outranks_a_partial_one():
    plates = np.array([_box(0, 0, 100, 40), _box(200, 0, 300, 40)], np.float32)
    det_quads = np.array([_box(0, 0, 50, 20)], np.float32)
    assert bench_quality.classify_image(plates, np.array([False, False]), det_quads, False) == "missed"


def test_settings_come_from_demo_and_the_peer_row_they_are_compared_with():
    settings = bench_quality.eval_settings()
    assert settings["defaults"] == {}
    assert settings["core"] == {"core_thresh": postprocess.SYNTHETIC_ONLY_CORE_THRESH} and bench_quality.peer_setting(
        "core") == "defaults"
    assert settings["nocore"] == {"core_thresh": 0.0} and bench_quality.peer_setting("nocore") == "defaults"
    assert postprocess.parse_zoom_when_empty(settings["zoom2"]["zoom_when_empty"]) == (2.0,)
    assert settings["demo"]["max_side_len"] == demo.PROFILES["full"].max_side_len
    # The fine-tune runs at the scale its checkpoint records: no --max_side_len.
    assert demo.FINETUNE_PROFILES["full"].max_side_len is None and "max_side_len" not in settings["finetune"]
    assert bench_quality.peer_setting("512") == "512"
    assert bench_quality.peer_setting("demo") == bench_quality.peer_setting("defaults") == "defaults"


def test_ratios_compare_all_correct_with_the_matching_peer_row():
    rows = [{"dataset": "d", "model": "demo", "setting": "512", "images_all_correct": 3},
            {"dataset": "d", "model": "demo", "setting": "demo", "images_all_correct": 1},
            {"dataset": "d", "model": "peer PP-OCRv4", "setting": "512", "images_all_correct": 6},
            {"dataset": "d", "model": "peer PP-OCRv4", "setting": "defaults", "images_all_correct": 0}]
    bench_quality._add_ratios(rows)
    assert rows[0]["ours_over_peer"] == 0.5
    assert rows[1]["ours_over_peer"] is None  # the peer got none right: no finite ratio
    assert "ours_over_peer" not in rows[2]


def test_plate_sizes_in_the_network_input(tmp_path):
    """Two photos, 1000x500 with a 100x40 plate and 2000x1000 with a 400x100 one (plate format).
    At 256 the first is scaled by 0.256 (25.6 x 10.24 px), the second by 0.128 (51.2 x 12.8 px);
    at 1024 the first keeps its size (eval.py does not upscale: 100 x 40), the second is scaled by
    0.512 (204.8 x 51.2). Medians of two values are their means; 10th percentiles interpolate 10 % of the way."""
    import cv2

    for name, (width, height), (x0, y0, x1, y1) in (("a", (1000, 500), (100, 100, 200, 140)),
                                                   ("b", (2000, 1000), (500, 500, 900, 600))):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.zeros((height, width, 3), np.uint8))
        (tmp_path / f"{name}.txt").write_text(f"{x0} {y0} {x1} {y0} {x1} {y1} {x0} {y1} AB123\n")
    sizes = bench_quality.plate_sizes_at(tmp_path, (256, 1024))
    assert sizes[256]["width"] == pytest.approx((25.6 + 51.2) / 2)
    assert sizes[256]["height"] == pytest.approx((10.24 + 12.8) / 2)
    assert sizes[256]["height_p10"] == pytest.approx(10.24 + 0.1 * (12.8 - 10.24))
    assert sizes[1024]["width"] == pytest.approx((100 + 204.8) / 2)
    assert sizes[1024]["width_p10"] == pytest.approx(100 + 0.1 * 104.8)


def test_detections_on_listed_unannotated_plates_are_dont_care(tmp_path):
    """One photo, one annotated plate (100,100)-(200,140) and a detection on it plus one on another car's
    plate at (400,300)-(440,316): not all correct on the ground truth as given; all correct when that plate
    is listed (the list pads it by DONT_CARE_PAD, so a detection 2 px off still lies 100 % inside); a
    detection elsewhere still counts against the image."""
    import cv2
    import icdar

    test, results = tmp_path / "test", tmp_path / "results"
    test.mkdir()
    results.mkdir()
    cv2.imwrite(str(test / "car.jpg"), np.zeros((480, 640, 3), np.uint8))
    (test / "car.txt").write_text("100 100 200 100 200 140 100 140 AB123\n")
    listed = tmp_path / "unannotated.tsv"
    listed.write_text("# comment\ncar\t400\t300\t440\t316\n")
    extra = bench_quality.unannotated_plates(listed)
    np.testing.assert_allclose(extra["car"], [_box(392, 296.8, 448, 319.2)])  # padded by 0.2 * 40, 0.2 * 16
    icdar.write_icdar_file(results / "car.txt", np.array([_box(100, 100, 200, 140), _box(402, 301, 442, 317)]))
    assert bench_quality.all_correct_with_dont_care(test, results, {}) == 0
    assert bench_quality.all_correct_with_dont_care(test, results, extra) == 1
    icdar.write_icdar_file(results / "car.txt", np.array([_box(100, 100, 200, 140), _box(10, 10, 50, 26)]))
    assert bench_quality.all_correct_with_dont_care(test, results, extra) == 0
    with pytest.raises(ValueError, match="not in"):
        bench_quality.all_correct_with_dont_care(test, results, {"bus": extra["car"]})
    listed.write_text("car\t400\t300\t440\n")
    with pytest.raises(ValueError, match="unannotated.tsv:1"):
        bench_quality.unannotated_plates(listed)


def test_the_plates_ro_list_names_test_frames_only():
    extra = bench_quality.unannotated_plates(bench_quality.UNANNOTATED_PLATES["plates_ro"])
    assert sum(len(quads) for quads in extra.values()) == 57
    test = bench_quality.SHARED_DATA / "plates_ro" / "test"
    if test.is_dir():
        assert set(extra) <= {path.stem for path in test.glob("*.jpg")}


def test_the_plates_dev_list_names_plates_dev_photos_only():
    extra = bench_quality.unannotated_plates(bench_quality.UNANNOTATED_PLATES["plates_dev"])
    assert sum(len(quads) for quads in extra.values()) == 3
    images = bench_quality.SHARED_DATA / "plates_dev" / "images"
    if images.is_dir():
        assert set(extra) <= {path.stem for path in images.iterdir()}


def test_cross_rows_score_the_other_data_sets_fine_tunes():
    trained = {"plates_dev": {"finetuned": Path("dev_ft"), "rehearsal": Path("dev_reh")},
               "plates_ro": {"finetuned": Path("ro_ft"), "rehearsal": Path("ro_reh")}}
    assert bench_quality.row_models("plates_ro", Path("demo"), trained, cross=True) == {
        "demo": Path("demo"), "finetuned": Path("ro_ft"), "rehearsal": Path("ro_reh"),
        "finetuned-x": Path("dev_ft"), "rehearsal-x": Path("dev_reh")}
    assert bench_quality.row_models("plates_ro", Path("demo"), trained, cross=False) == {
        "demo": Path("demo"), "finetuned": Path("ro_ft"), "rehearsal": Path("ro_reh")}
    with pytest.raises(ValueError, match="two"):
        bench_quality.row_models("plates_ro", Path("demo"), trained | {"third": {}}, cross=True)
