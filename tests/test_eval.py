"""eval.py: result files, overlays, summary.json and scoring.

The fast tests feed eval a stand-in network that returns the perfect score and
geometry maps of a known layout, so every number can be worked out by hand. The
slow test trains a tiny model for two steps on two images and runs the CLI.
"""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import eval as east_eval
import geometry
import icdar
import postprocess

REPO_ROOT = Path(__file__).resolve().parents[1]

# Text layout in relative coordinates (x / width, y / height), clockwise from top-left.
LAYOUT = np.array([[[0.10, 0.20], [0.60, 0.20], [0.60, 0.40], [0.10, 0.40]],
                   [[0.20, 0.60], [0.90, 0.60], [0.90, 0.85], [0.20, 0.85]]], dtype=np.float32)
EMPTY_HW = (128, 128)  # images of this size get maps without text


def perfect_predictor(images):
    """Stand-in network: the ground-truth maps of LAYOUT scaled to the input size."""
    batch, height, width, _ = images.shape
    score_maps, geo_maps = [], []
    for _ in range(batch):
        quads = LAYOUT * np.array([width, height], np.float32)
        if (height, width) == EMPTY_HW:
            quads = np.zeros((0, 4, 2), np.float32)
        score_map, geo_map, _ = geometry.make_rbox_targets(quads, np.zeros(len(quads), bool), (height, width))
        score_maps.append(score_map)
        geo_maps.append(geo_map)
    return np.stack(score_maps), np.stack(geo_maps)


def make_dataset(folder, sizes):
    """Images (W x H from ``sizes``) and ICDAR ground truth of LAYOUT in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (width, height) in enumerate(sizes, start=1):
        cv2.imwrite(str(folder / f"img_{index}.jpg"), np.full((height, width, 3), 90, np.uint8))
        quads = LAYOUT * np.array([width, height], np.float32)
        if (height, width) == EMPTY_HW:
            quads = np.zeros((0, 4, 2), np.float32)
        icdar.write_icdar_file(folder / f"gt_img_{index}.txt", quads, ["word"] * len(quads))


def config(tmp_path, **overrides):
    values = dict(test_data_path=str(tmp_path / "images"), model_path="unused",
                  output_dir=str(tmp_path / "out"), gt_path=str(tmp_path / "images"))
    values.update(overrides)
    return east_eval.EvalConfig(**values)


# --------------------------------------------------------------------------- pieces


def test_result_file_names():
    assert east_eval.result_file_name("img_1", "plain") == "img_1.txt"
    assert east_eval.result_file_name("img_1", "icdar") == "res_img_1.txt"


def test_to_output_quads_scales_rounds_orders_and_drops_tiny():
    # Network input was half the original size: coordinates double.
    boxes = np.array([
        [10.2, 5, 50, 5, 50, 25, 10.2, 25, 0.9],     # clockwise from top-left already
        [50, 30, 50, 50, 10, 50, 10, 30, 0.8],       # starts top-right, counter-clockwise
        [0, 0, 2, 0, 2, 2, 0, 2, 0.95],              # 4x4 px in the original: dropped (< 5 px)
    ], np.float32)
    quads, scores = postprocess.to_output_quads(boxes, 0.5, 0.5)
    assert quads.dtype == np.int32
    assert quads.tolist() == [[[20, 10], [100, 10], [100, 50], [20, 50]],
                              [[20, 60], [100, 60], [100, 100], [20, 100]]]
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    empty_quads, empty_scores = postprocess.to_output_quads(np.zeros((0, 9), np.float32), 1.0, 1.0)
    assert empty_quads.shape == (0, 4, 2) and empty_scores.shape == (0,)


def test_output_quads_are_clipped_to_the_image():
    boxes = np.array([[-30, -10, 80, -10, 80, 40, -30, 40, 0.9]], np.float32)
    quads, _ = postprocess.to_output_quads(boxes, 1.0, 1.0, image_hw=(30, 60))
    assert quads.tolist() == [[[0, 0], [59, 0], [59, 29], [0, 29]]]
    # A box entirely outside collapses to an edge and is dropped.
    outside = np.array([[70, 5, 90, 5, 90, 25, 70, 25, 0.9]], np.float32)
    assert postprocess.to_output_quads(outside, 1.0, 1.0, image_hw=(30, 60))[0].shape == (0, 4, 2)


def test_detector_boxes_stay_inside_the_image():
    """The network's distances can reach past the border: every output corner lies in the image."""
    score_maps, geo_maps = perfect_predictor(np.zeros((1, 192, 256, 3), np.float32))
    grown = geo_maps.copy()
    grown[..., :4] += np.where(score_maps > 0, 40.0, 0.0)  # each box 40 px larger on every side
    detector = postprocess.Detector(lambda images: (score_maps, grown), postprocess.DetectOptions(box_thresh=0.05))
    quads = detector(np.zeros((192, 256, 3), np.uint8)).quads
    assert len(quads) >= 1
    assert quads[..., 0].min() == 0 and quads[..., 0].max() == 255
    assert quads[..., 1].min() == 0 and quads[..., 1].max() == 191


def test_list_images(tmp_path):
    make_dataset(tmp_path / "a", [(64, 64)])
    make_dataset(tmp_path / "a" / "sub", [(64, 64), (64, 64)])
    with pytest.raises(ValueError, match="same stem"):
        east_eval.list_images(tmp_path / "a")
    assert east_eval.list_images(tmp_path / "a" / "sub" / "img_2.jpg") == [tmp_path / "a" / "sub" / "img_2.jpg"]
    with pytest.raises(ValueError, match="no such folder"):
        east_eval.list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        east_eval.list_images(tmp_path / "empty")


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="output_format"):
        east_eval.EvalConfig("a", "b", "c", output_format="coco")
    with pytest.raises(ValueError, match="box_thresh"):
        east_eval.EvalConfig("a", "b", "c", box_thresh=2.0)


# --------------------------------------------------------------------------- whole runs


@pytest.mark.parametrize("output_format, prefix, newline", [("plain", "", b"\n"), ("icdar", "res_", b"\r\n")])
def test_run_writes_every_output_and_scores(tmp_path, output_format, prefix, newline):
    # img_1 and img_2: two words each (sizes not multiples of 32); img_3: no text.
    make_dataset(tmp_path / "images", [(320, 200), (250, 180), EMPTY_HW[::-1]])
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.me").write_text("older file")
    summary = east_eval.run_evaluation(config(tmp_path, output_format=output_format),
                                       (perfect_predictor, {"model": "perfect"}))

    assert (out / "keep.me").read_text() == "older file"  # never wiped
    for stem, boxes in (("img_1", 2), ("img_2", 2), ("img_3", 0)):
        data = (out / f"{prefix}{stem}.txt").read_bytes()
        assert data.count(newline) == boxes
        assert cv2.imread(str(out / f"{stem}.jpg")) is not None
    assert not (out / f"{prefix}broken.txt").exists()
    written = icdar.read_detection_file(out / f"{prefix}img_1.txt")
    # Each box back in original pixels, clockwise from the top-left, within 2 px of the truth.
    truth = LAYOUT * np.array([320, 200])
    assert np.abs(np.sort(written.reshape(2, 8), axis=0) - np.sort(truth.reshape(2, 8), axis=0)).max() <= 2
    assert np.all(geometry.polygon_signed_area(written) > 0)

    assert summary["images"] == 3 and summary["boxes"] == 4
    assert [entry["image"] for entry in summary["unreadable"]] == [str(tmp_path / "images" / "broken.jpg")]
    # broken.jpg has no ground truth, so it is not scored.
    assert summary["evaluation"] == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "images": 3,
                                     "images_all_correct": 3, "matched": 4, "gt_care": 4, "det_care": 4}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["per_image"][0]["seconds"].keys() >= {"network", "decode", "nms", "total"}
    assert on_disk["per_image"][2]["evaluation"]["all_correct"] is True
    # The files on disk score the same as the run.
    from_files = icdar.evaluate_paths(tmp_path / "images", out).summary()
    assert from_files == {key: summary["evaluation"][key] for key in from_files}


def test_batches_and_nowrite_images(tmp_path):
    make_dataset(tmp_path / "images", [(320, 200), (320, 200), (250, 180)])
    summary = east_eval.run_evaluation(config(tmp_path, batch_size=2, write_images=False),
                                       (perfect_predictor, {}))
    assert summary["evaluation"]["images_all_correct"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_1.txt", "img_2.txt", "img_3.txt",
                                                                    "summary.json"]


def test_output_dir_must_not_hold_the_inputs(tmp_path):
    make_dataset(tmp_path / "images", [(64, 64)])
    with pytest.raises(ValueError, match="is the same path as --test_data_path"):
        east_eval.run_evaluation(config(tmp_path, output_dir=str(tmp_path / "images")), (perfect_predictor, {}))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_trained_run):
    """Two images (64x64, 96x64) and the session's shared tiny run (conftest.tiny_trained_run) as ckpt."""
    folder = tmp_path_factory.mktemp("tiny")
    make_dataset(folder / "images", [(64, 64), (96, 64)])
    (folder / "ckpt").symlink_to(tiny_trained_run["run"], target_is_directory=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("output_format, prefix, side_flag", [("plain", "", []), ("icdar", "res_", ["--max_side_len=96", "--core_thresh=0.01"])])
def test_eval_cli_with_a_tiny_trained_model(tiny_checkpoint, tmp_path, output_format, prefix, side_flag):
    images = tiny_checkpoint / "images"
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval.py"), f"--test_data_path={images}",
         f"--model_path={tiny_checkpoint / 'ckpt'}", f"--output_dir={out}", f"--gt_path={images}",
         f"--output_format={output_format}", "--score_map_thresh=0.5", *side_flag],
        capture_output=True, text=True, cwd=str(REPO_ROOT), env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("precision ") and last.endswith("/2 images all correct")
    for stem in ("img_1", "img_2"):
        icdar.read_detection_file(out / f"{prefix}{stem}.txt")  # parses
        assert (out / f"{stem}.jpg").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["evaluation"]["images"] == 2
    assert summary["model"]["step"] == 60
    # The checkpoint records the scale its training implies; eval.py uses it unless --max_side_len is given.
    recorded = summary["model"]["max_side_len"]
    assert isinstance(recorded, int) and recorded % 32 == 0
    assert summary["config"]["max_side_len"] == (96 if side_flag else recorded)
    # At the recorded scale an image without a box is looked at again at 2, 3, 4 times the side; a given side runs
    # once.
    assert summary["config"]["zoom_when_empty"] == ([] if side_flag else [2.0, 3.0, 4.0])
    # ... and averages with the mirrored image there (flip_test), one pass at a given side.
    assert summary["config"]["flip_test"] is not bool(side_flag)
    assert ("also run mirrored" in done.stdout) is not bool(side_flag)
    if side_flag:  # given: used, and said
        assert summary["config"]["core_thresh"] == 0.01 and "(--core_thresh 0 keeps them" in done.stdout
    else:  # the tiny run records 0: off, and nothing said
        assert summary["config"]["core_thresh"] == 0.0 and "--core_thresh" not in done.stdout


def test_detector_matches_postprocess_detect_boxes_and_times_each_stage():
    score_maps, geo_maps = perfect_predictor(np.zeros((1, 192, 256, 3), np.float32))
    rng = np.random.default_rng(0)
    score_map = np.clip(score_maps[0] * rng.uniform(0.7, 1.0, score_maps[0].shape), 0, 1).astype(np.float32)
    detector = postprocess.Detector(lambda images: (score_map[None], geo_maps[0][None]), postprocess.DetectOptions())
    detection = detector(np.zeros((192, 256, 3), np.uint8))
    expected = postprocess.detect_boxes(score_map, geo_maps[0], score_map_thresh=0.8, box_thresh=0.1, nms_thres=0.2)
    assert len(expected) == 2
    quads, scores = postprocess.to_output_quads(expected, 1.0, 1.0)
    np.testing.assert_array_equal(detection.quads, quads)
    np.testing.assert_array_equal(detection.scores, scores)
    assert set(detection.seconds) == {"resize", "network", "decode", "nms"} and detection.input_hw == (192, 256)


def test_eval_flag_defaults_come_from_detect_options():
    defaults = postprocess.DetectOptions()
    config = east_eval.EvalConfig("a", "b", "c")
    assert config.detect_options == defaults
    assert (config.score_map_thresh, config.box_thresh, config.nms_thres) == (
        defaults.score_map_thresh, defaults.box_thresh, defaults.nms_thres)
    # core_thresh not given: the model's recorded one (train.py --eval_core_thresh), else off (EAST-tf2).
    assert config.core_thresh is None and config.detect_options.core_thresh == defaults.core_thresh == 0.0
    assert config.for_model({"core_thresh": 0.75}).core_thresh == 0.75
    assert config.for_model({"core_thresh": 0.75}).detect_options.core_thresh == 0.75
    assert config.for_model({"core_thresh": None}).core_thresh == config.for_model({}).core_thresh == 0.0
    assert east_eval.EvalConfig("a", "b", "c", core_thresh=0.0).for_model({"core_thresh": 0.75}).core_thresh == 0.0
    # max_side_len not given: the model's recorded scale, else DetectOptions' (EAST-tf2's 2400).
    assert config.max_side_len is None
    assert config.for_model({"max_side_len": 352}).max_side_len == 352
    assert config.for_model({"max_side_len": None}).max_side_len == config.for_model({}).max_side_len == 2400
    given = east_eval.EvalConfig("a", "b", "c", max_side_len=640)
    assert given.for_model({"max_side_len": 352}) == dataclasses.replace(given, zoom_when_empty=(), flip_test=False,
                                                                         core_thresh=0.0)
    # zoom_when_empty: 2, 3, 4 at the recorded scale, one run with a given side or test scales, else as given.
    assert config.for_model({"max_side_len": 352}).detect_options.zoom_when_empty == postprocess.ZOOM_WHEN_EMPTY
    assert postprocess.ZOOM_WHEN_EMPTY == (2.0, 3.0, 4.0)
    assert east_eval.EvalConfig("a", "b", "c", test_scales="256,512").for_model({}).zoom_when_empty == ()
    assert east_eval.EvalConfig("a", "b", "c", max_side_len=640, zoom_when_empty=1.5).for_model(
        {"max_side_len": 352}).detect_options.zoom_when_empty == (1.5,)
    assert east_eval.EvalConfig("a", "b", "c", zoom_when_empty="1.5, 3").detect_options.zoom_sides == (3600, 7200)
    assert east_eval.EvalConfig("a", "b", "c", zoom_when_empty="1").detect_options.zoom_when_empty == ()
    assert east_eval.EvalConfig("a", "b", "c", test_scales="256, 512").detect_options.scales == (256, 512)
    with pytest.raises(ValueError, match="test_scales"):
        east_eval.EvalConfig("a", "b", "c", test_scales="256,big")
    with pytest.raises(ValueError, match="test_scales"):
        east_eval.EvalConfig("a", "b", "c", test_scales="256,16")


def test_two_scales_give_the_union_merged_without_duplicates(tmp_path):
    """One text line found at both scales and one found only at the larger: two boxes, not three."""
    image = np.zeros((256, 256, 3), np.uint8)
    shared = np.array([[[32, 32], [192, 32], [192, 80], [32, 80]]], np.float32)  # original px
    small_only = np.array([[[40, 160], [200, 160], [200, 224], [40, 224]]], np.float32)

    def predict(images):
        side = images.shape[1]
        quads = shared if side == 128 else np.concatenate([shared, small_only])
        score_map, geo_map, _ = geometry.make_rbox_targets(quads * side / 256, np.zeros(len(quads), bool),
                                                           (side, side))
        return score_map[None], geo_map[None]

    one = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=128))(image)
    both = postprocess.Detector(predict, postprocess.DetectOptions(test_scales=(128, 256)))(image)
    assert len(one.quads) == 1
    assert len(both.quads) == 2 and both.input_hw == (128, 128)
    found = sorted(both.quads.tolist(), key=lambda quad: quad[0][1])
    np.testing.assert_allclose(found, [shared[0], small_only[0]], atol=4)
    assert postprocess.merge_scales([], 0.2).shape == (0, 9)


def _network_finding(plate: np.ndarray, photo_side: int, finds, sides: list):
    """A stand-in network for square photos of ``photo_side`` px: the exact RBOX maps of ``plate`` (1, 4, 2)
    original px where ``finds(side, image)`` holds, empty maps elsewhere; appends (batch size, side) per call."""
    def predict(images):
        side = images.shape[1]
        sides.append((len(images), side))
        maps = [geometry.make_rbox_targets(quads * side / photo_side, np.zeros(len(quads), bool), (side, side))
                for quads in (plate if finds(side, image) else plate[:0] for image in images)]
        return np.stack([score for score, _, _ in maps]), np.stack([geo for _, geo, _ in maps])
    return predict


def test_an_image_without_a_box_is_run_again_at_zoom_when_empty_times_the_side():
    """A plate the network finds only at 256 px: one run at 128 misses it, zoom 2 finds it at 256; an image
    with a box at 128 is not run again, nor one whose input cannot grow (already at its own size)."""
    plate = np.array([[[40, 160], [200, 160], [200, 224], [40, 224]]], np.float32)  # original px
    sides = []
    predict = _network_finding(plate, 256, lambda side, image: side >= 256 or image[0, 0, 0] != 0, sides)

    small, found_at_128 = np.zeros((256, 256, 3), np.uint8), np.full((256, 256, 3), 9, np.uint8)
    once = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=128))(small)
    assert len(once.quads) == 0 and sides == [(1, 128)]
    sides.clear()
    zoomed = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=128, zoom_when_empty=2.0))
    detections = zoomed.detect_batch([small, found_at_128])
    assert sides == [(2, 128), (1, 256)]  # only the first image is run again
    np.testing.assert_allclose(detections[0].quads, plate, atol=4)
    assert detections[0].input_hw == (256, 256) and detections[1].input_hw == (128, 128)
    np.testing.assert_allclose(detections[1].quads, plate, atol=4)
    sides.clear()
    at_own_size = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=256, zoom_when_empty=2.0))
    assert len(at_own_size(found_at_128 * 0).quads) == 1 and sides == [(1, 256)]


def test_an_image_still_without_a_box_is_looked_at_with_each_zoom_factor_in_turn():
    """A plate the network finds only at 384 px or more, in a 512 px photo, at max_side_len 128 and factors
    2, 3, 4, 5: runs at 128, 256 and 384, which finds it and keeps its boxes (no run at 512 follows). An
    image it never finds is run at each side until its own size (640 capped at 512 is not run again) and
    keeps its first input_hw and no box."""
    plate = np.array([[[80, 320], [400, 320], [400, 448], [80, 448]]], np.float32)  # original px
    sides = []
    predict = _network_finding(plate, 512, lambda side, image: side >= 384 and image[0, 0, 0] == 0, sides)

    ladder = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=128, zoom_when_empty="2,3,4,5"))
    found, never = ladder.detect_batch([np.zeros((512, 512, 3), np.uint8), np.full((512, 512, 3), 9, np.uint8)])
    assert sides == [(2, 128), (2, 256), (2, 384), (1, 512)]
    np.testing.assert_allclose(found.quads, plate, atol=8)
    assert found.input_hw == (384, 384)
    assert len(never.quads) == 0 and never.input_hw == (128, 128)


def test_the_mirrored_score_map_is_read_back_on_the_unmirrored_grid():
    """A network whose score is its input column's value, on a ramp image (column x holds x): map column k
    reads input column 4k. The mirrored image holds W - 1 - x at x, so its map column j reads W - 1 - 4j;
    read back at the unmirrored k (between mirrored columns w - 1 - k and w - k, 3/4 of the way), it is
    again 4k, exactly, except at column 0 (its neighbour lies past the edge: the last column repeats)."""
    width = 64
    ramp = np.broadcast_to(np.arange(width, dtype=np.float32), (32, width))[None, :, :, None]
    scores = ramp[:, ::4, ::4]
    mirrored_scores = ramp[:, :, ::-1][:, ::4, ::4]
    np.testing.assert_array_equal(scores[0, 0, :, 0], 4 * np.arange(width // 4))
    # average_with_mirrored is (scores + read-back) / 2, so the read-back is twice it minus the scores.
    unmirrored = 2 * postprocess.average_with_mirrored(scores, mirrored_scores) - scores
    np.testing.assert_allclose(unmirrored[..., 1:, :], scores[..., 1:, :], atol=1e-5)
    # Column 0 reads the mirrored map's last column alone (input column 3 there is W - 4): 3, not 0.
    np.testing.assert_allclose(unmirrored[..., 0, 0], 3, atol=1e-5)


def test_flip_test_keeps_what_the_mirrored_image_confirms():
    """A stand-in network that fires on a bright mark wherever it is (it follows the image when mirrored)
    and also, always, at one fixed place of its input (a response to where, not what: mirrored, it lands
    elsewhere). One pass: both boxes. With flip_test: the mark's box alone, its scores 1 in both views,
    while the fixed response averages to 0.5, under the 0.8 threshold; the second call is the mirrored batch."""
    image = np.zeros((128, 256, 3), np.uint8)
    mark = np.array([[[24, 32], [104, 32], [104, 64], [24, 64]]], np.float32)
    fixed = np.array([[[24, 88], [88, 88], [88, 112], [24, 112]]], np.float32)
    image[32:64, 24:104] = 255
    batches = []

    def predict(images):
        batches.append(images.copy())
        maps = []
        for each in images:
            bright = np.argwhere(each[..., 0] > 0)
            found = np.array([[[bright[:, 1].min(), bright[:, 0].min()], [bright[:, 1].max() + 1, bright[:, 0].min()],
                               [bright[:, 1].max() + 1, bright[:, 0].max() + 1],
                               [bright[:, 1].min(), bright[:, 0].max() + 1]]], np.float32)
            quads = np.concatenate([found, fixed])
            maps.append(geometry.make_rbox_targets(quads, np.zeros(2, bool), each.shape[:2]))
        return np.stack([score for score, _, _ in maps]), np.stack([geo for _, geo, _ in maps])

    one_pass = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=256))(image)
    assert len(one_pass.quads) == 2 and len(batches) == 1
    batches.clear()
    flipped = postprocess.Detector(predict, postprocess.DetectOptions(max_side_len=256, flip_test=True))(image)
    assert len(batches) == 2
    np.testing.assert_array_equal(batches[1], batches[0][:, :, ::-1])
    assert len(flipped.quads) == 1
    np.testing.assert_allclose(flipped.quads[0], mark[0], atol=4)


def test_flip_test_is_on_at_the_recorded_scale_unless_told():
    recorded = {"max_side_len": 352}
    assert east_eval.EvalConfig("a", "b", "c").for_model(recorded).detect_options.flip_test is True
    # A side or test scales given, or a model that records no scale (EAST-tf2's, an export): one pass.
    assert east_eval.EvalConfig("a", "b", "c", max_side_len=640).for_model(recorded).flip_test is False
    assert east_eval.EvalConfig("a", "b", "c", test_scales="256,512").for_model(recorded).flip_test is False
    assert east_eval.EvalConfig("a", "b", "c").for_model({}).flip_test is False
    assert east_eval.EvalConfig("a", "b", "c", flip_test=False).for_model(recorded).flip_test is False
    assert east_eval.EvalConfig("a", "b", "c", max_side_len=640, flip_test=True).for_model({}).flip_test is True
    assert east_eval.EvalConfig("a", "b", "c").detect_options.flip_test is False  # before the model is known


def test_eval_counts_the_images_it_looked_at_again(tmp_path):
    """A 256 px photo whose plates the stand-in network finds only above 128 px: at the model's recorded 128,
    eval.py zooms it to 256 and finds both; with --max_side_len 128 given, one run and nothing found."""
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "car_1.png"), np.full((256, 256, 3), 90, np.uint8))
    (images / "car_1.txt").write_text("".join(" ".join(f"{value:g}" for value in quad.reshape(-1)) + " AB12\n"
                                              for quad in LAYOUT * 256))
    recorded = east_eval.run_evaluation(config(tmp_path, annotation_format="plate"),
                                        (perfect_predictor, {"max_side_len": 128}))
    assert recorded["images_zoomed"] == 1 and tuple(recorded["config"]["zoom_when_empty"]) == (2.0, 3.0, 4.0)
    assert recorded["per_image"][0]["input_hw"] == [256, 256] and recorded["evaluation"]["images_all_correct"] == 1
    given = east_eval.run_evaluation(config(tmp_path, annotation_format="plate", max_side_len=128,
                                            output_dir=str(tmp_path / "out_given")),
                                     (perfect_predictor, {"max_side_len": 128}))
    assert given["images_zoomed"] == 0 and given["boxes"] == 0 and given["evaluation"]["recall"] == 0.0


def test_zoom_confirm_iou_reaches_the_detector_from_the_flag_and_survives_the_model_settling():
    assert east_eval.EvalConfig("a", "b", "c").for_model({"max_side_len": 320}).detect_options.zoom_confirm_iou == \
        postprocess.ZOOM_CONFIRM_IOU
    given = east_eval.EvalConfig("a", "b", "c", zoom_confirm_iou=0.0).for_model({"max_side_len": 320})
    assert given.detect_options.zoom_confirm_iou == 0.0 and given.detect_options.zoom_when_empty == (2.0, 3.0, 4.0)
    with pytest.raises(ValueError, match="zoom_confirm_iou"):
        east_eval.EvalConfig("a", "b", "c", zoom_confirm_iou=2.0)


def test_detect_options_validate_once():
    for bad in (dict(score_map_thresh=1.5), dict(box_thresh=-0.1), dict(nms_thres=float("nan")),
                dict(max_side_len=16), dict(max_side_len=100.0), dict(test_scales=(64, 8)),
                dict(zoom_when_empty=0.5), dict(zoom_when_empty=float("inf")), dict(zoom_when_empty=True),
                dict(zoom_when_empty="3,2"), dict(zoom_when_empty="2,x"), dict(zoom_when_empty=(2.0, 2.0)),
                dict(flip_test=1), dict(flip_test="yes"), dict(zoom_confirm_iou=1.5), dict(zoom_confirm_iou=-0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            postprocess.DetectOptions(**bad)
    assert postprocess.DetectOptions(score_map_thresh=0.0, box_thresh=1.0).box_thresh == 1.0  # closed [0, 1]


def test_unreadable_image_with_ground_truth_is_scored_as_all_missed(tmp_path):
    """Plate-format ground truth beside the images: the broken image's plate counts as missed."""
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "car_1.jpg"), np.full((200, 320, 3), 90, np.uint8))
    quads = LAYOUT * np.array([320, 200], np.float32)
    (images / "car_1.txt").write_text("".join(" ".join(f"{value:g}" for value in quad.reshape(-1)) + " AB12\n"
                                              for quad in quads))
    (images / "car_2.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    (images / "car_2.txt").write_text("10 10 90 10 90 40 10 40 CD34\n")
    summary = east_eval.run_evaluation(config(tmp_path, annotation_format="plate"),
                                       (perfect_predictor, {"model": "perfect"}))
    assert [entry["image"] for entry in summary["unreadable"]] == [str(images / "car_2.jpg")]
    assert summary["evaluation"] == {"precision": 1.0, "recall": 2 / 3, "hmean": 0.8, "images": 2,
                                     "images_all_correct": 1, "matched": 2, "gt_care": 3, "det_care": 2}
