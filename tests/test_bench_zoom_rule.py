"""bench/bench_zoom_rule.py: recorded looks replayed under a rule give what postprocess.Detector gives, and
each rule keeps or skips a later look's box as its docstring says (a stand-in network, hand-built records)."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_zoom_rule  # noqa: E402
import geometry  # noqa: E402
import postprocess  # noqa: E402

PHOTO_SIDE = 512
PLATE = np.array([[[80, 320], [400, 320], [400, 448], [80, 448]]], np.float32)  # original px, 128 px tall


def _predict_scaled(score_at_side: dict[int, float]):
    """A stand-in network for PHOTO_SIDE px square photos: PLATE's exact RBOX maps, the score map multiplied
    by score_at_side.get(side, 0) (0: no plate at that side)."""
    def predict(images):
        side = images.shape[1]
        score, geo, _ = geometry.make_rbox_targets(PLATE * side / PHOTO_SIDE, np.zeros(1, bool), (side, side))
        scale = score_at_side.get(side, 0.0)
        return np.stack([score * scale] * len(images)), np.stack([geo] * len(images))
    return predict


def _replayed(score_at_side, rule, first_core=0.0):
    options = postprocess.DetectOptions(max_side_len=128, zoom_when_empty="2,3,4")
    detector = postprocess.Detector(_predict_scaled(score_at_side), options)
    record = bench_zoom_rule.record_photo(detector, np.zeros((PHOTO_SIDE, PHOTO_SIDE, 3), np.uint8), first_core)
    return record, bench_zoom_rule.apply_rule(record, rule)


@pytest.mark.parametrize("score_at_side", [{384: 1.0}, {256: 1.0, 384: 1.0}, {128: 1.0}, {}])
def test_the_ladder_replayed_is_what_the_detector_outputs(score_at_side):
    record, replayed = _replayed(score_at_side, bench_zoom_rule.RULES["ladder"])
    options = postprocess.DetectOptions(max_side_len=128, zoom_when_empty="2,3,4", zoom_confirm_iou=0.0)
    detected = postprocess.Detector(_predict_scaled(score_at_side), options)(np.zeros((512, 512, 3), np.uint8))
    np.testing.assert_array_equal(replayed, detected.quads)
    # Looks at 128, then 256, 384 and 512 only when the first keeps no box.
    assert [look["input_hw"][0] for look in record["looks"]] == ([128] if 128 in score_at_side else [128, 256, 384, 512])


def test_a_stricter_core_skips_to_the_next_look():
    """At 256 the core scores 0.9 (the whole map is 0.9), at 384 it scores 1: the ladder keeps the 256 box,
    core 0.95 skips it and keeps the one found at 384; core 0.95 with nothing better found keeps no box."""
    record, ladder = _replayed({256: 0.9, 384: 1.0}, bench_zoom_rule.LaterLookRule())
    np.testing.assert_allclose(record["looks"][1]["cores"], [0.9], atol=1e-6)
    np.testing.assert_allclose(ladder, PLATE, atol=4)
    strict = bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(core=0.95))
    np.testing.assert_allclose(strict, PLATE, atol=4)
    _, none = _replayed({256: 0.9}, bench_zoom_rule.LaterLookRule(core=0.95))
    assert none.shape == (0, 4, 2)
    _, only_2x = _replayed({384: 1.0}, bench_zoom_rule.LaterLookRule(looks=1))
    assert only_2x.shape == (0, 4, 2)  # found at 3x only


def test_the_height_rule_measures_boxes_at_the_first_look():
    """PLATE is 128 px tall in the 512 px photo, 32 px at the first look (128 px): under 40 it is kept,
    under 30 dropped."""
    record, _ = _replayed({256: 1.0}, bench_zoom_rule.LaterLookRule())
    kept = bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(max_first_height=40))
    np.testing.assert_allclose(kept, PLATE, atol=4)
    dropped = bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(max_first_height=30))
    assert dropped.shape == (0, 4, 2)


def test_a_looks_cap_never_runs_a_first_look_box_through_the_rule():
    """A box kept at the first look is the output, whatever the rule for later looks says."""
    record, ladder = _replayed({128: 1.0}, bench_zoom_rule.LaterLookRule(core=0.99, max_first_height=1, looks=0))
    np.testing.assert_allclose(ladder, PLATE, atol=4)
    assert len(record["looks"]) == 1


def test_a_confirmed_box_is_one_another_look_also_found():
    """Found at 256 and at 384: confirmed at 256. Found at 256 alone: no look confirms it, and no box."""
    record, _ = _replayed({256: 1.0, 384: 1.0}, bench_zoom_rule.LaterLookRule())
    confirmed = bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(confirm_iou=0.5))
    np.testing.assert_allclose(confirmed, PLATE, atol=4)
    record, ladder = _replayed({256: 1.0}, bench_zoom_rule.LaterLookRule())
    assert len(ladder) == 1
    assert bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(confirm_iou=0.5)).shape == (0, 4, 2)


def test_the_aspect_rule_drops_boxes_longer_than_it():
    """PLATE is 320 x 128 px, 2.5:1: kept under 3, dropped under 2."""
    record, _ = _replayed({256: 1.0}, bench_zoom_rule.LaterLookRule())
    np.testing.assert_allclose(bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(max_aspect=3)),
                               PLATE, atol=4)
    assert bench_zoom_rule.apply_rule(record, bench_zoom_rule.LaterLookRule(max_aspect=2)).shape == (0, 4, 2)


LAMP = np.array([[[400, 40], [480, 40], [480, 72], [400, 72]]], np.float32)  # original px


def _predict_found(found_at_side: dict[int, np.ndarray]):
    """A stand-in network for PHOTO_SIDE px square photos: the exact RBOX maps of found_at_side[side]
    ((K, 4, 2) original px, or (quads, a factor on the score map); none at other sides)."""
    def predict(images):
        side = images.shape[1]
        quads, factor = _with_factor(found_at_side.get(side, PLATE[:0]))
        score, geo, _ = geometry.make_rbox_targets(quads * side / PHOTO_SIDE, np.zeros(len(quads), bool), (side, side))
        return np.stack([score * factor] * len(images)), np.stack([geo] * len(images))
    return predict


def _with_factor(found):
    return found if isinstance(found, tuple) else (found, 1.0)


PLATE_AND_LAMP = np.concatenate([PLATE, LAMP])


@pytest.mark.parametrize("found_at_side, core_thresh, kept", [
    ({256: PLATE_AND_LAMP, 384: PLATE}, 0.0, [PLATE]),      # the next look confirms the plate
    ({256: PLATE_AND_LAMP}, 0.0, [PLATE, LAMP]),            # nothing confirmed: both stay
    ({256: (PLATE, 0.85), 384: PLATE_AND_LAMP}, 0.9, [PLATE]),  # at 384 (3x); the core-filtered look before confirms
    ({384: (PLATE, 0.85), 512: PLATE_AND_LAMP}, 0.9, [PLATE]),  # the same at 512, the last look: no look after it
])
def test_eval_drops_the_boxes_of_a_zoom_look_no_other_look_found(found_at_side, core_thresh, kept):
    """The detector's default keeps the confirmed boxes of a zoom look with several (boxes of the other looks
    count before the core filter); the bench's replay of eval.py's rule gives the same, and its ladder the
    detector with the check off: every box of the first zoom look that keeps one."""
    image = np.zeros((PHOTO_SIDE, PHOTO_SIDE, 3), np.uint8)
    options = postprocess.DetectOptions(max_side_len=128, zoom_when_empty="2,3,4", core_thresh=core_thresh)
    predict = _predict_found(found_at_side)
    detected = postprocess.Detector(predict, options)(image)
    np.testing.assert_allclose(sorted(detected.quads.tolist()), sorted(np.concatenate(kept).tolist()), atol=4)
    record = bench_zoom_rule.record_photo(postprocess.Detector(predict, dataclasses.replace(options, core_thresh=0.0)),
                                          image, core_thresh)
    np.testing.assert_array_equal(bench_zoom_rule.apply_rule(record, bench_zoom_rule.RULES[bench_zoom_rule.EVAL_RULE]),
                                  detected.quads)
    unchecked = postprocess.Detector(predict, dataclasses.replace(options, zoom_confirm_iou=0.0))(image)
    assert len(unchecked.quads) == 2
    np.testing.assert_array_equal(bench_zoom_rule.apply_rule(record, bench_zoom_rule.RULES["ladder"]), unchecked.quads)


def test_confirmed_by_is_an_iou_at_or_above_the_threshold():
    """Squares 10 px wide, one shifted 3 px down: intersection 70, union 130, IoU 0.538."""
    square = np.array([[[0, 0], [10, 0], [10, 10], [0, 10]]], np.float32)
    shifted, far = square + [0, 3], square + [50, 0]
    np.testing.assert_array_equal(postprocess.confirmed_by(np.concatenate([square, far]), shifted, 0.53), [True, False])
    np.testing.assert_array_equal(postprocess.confirmed_by(square, np.concatenate([far, shifted]), 0.54), [False])
    assert postprocess.confirmed_by(square, square[:0], 0.0).tolist() == [False]
