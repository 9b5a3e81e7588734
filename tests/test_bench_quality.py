"""bench/bench_quality.py: the failure classes on hand-made boxes, and settings taken from demo.py."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_quality  # noqa: E402
import demo  # noqa: E402


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
