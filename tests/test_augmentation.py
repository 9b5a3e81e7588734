"""Tests for augmentation.py: EAST-tf2's rescale, crop, pad and resize keep every quad on its pixels."""
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

import augmentation
import data_preprocessor as dp
from samples import Sample


def marked_scene(folder: Path, size_hw=(360, 640), suffix: str = "png") -> Sample:
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
    sample = marked_scene(tmp_path, (361, 641), suffix)
    with_text = backgrounds = 0
    for seed in range(24):
        # Every fourth example asks for a text-free crop.
        config = augmentation.AugmentConfig(input_size=256, background_ratio=float(seed % 4 == 0))
        example = augmentation.make_example(sample, np.random.default_rng(seed), config)
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
    sample = marked_scene(tmp_path)
    config = augmentation.AugmentConfig(input_size=128, background_ratio=0.0, random_scale=(3.0,), max_text_size=100)
    for seed in range(5):
        quads = augmentation.make_example(sample, np.random.default_rng(seed), config)["quads"]
        extent = (quads.max(axis=1) - quads.min(axis=1)).max()
        assert extent <= 100.5
    # 640 px wide -> 320: the crop then fits the 512 px input unscaled, so quads shrink by 0.5 +- 10 %.
    config = augmentation.AugmentConfig(background_ratio=0.0, random_scale=(1.0,), max_image_large_side=320)
    for seed in range(5):
        quads = augmentation.make_example(sample, np.random.default_rng(seed), config)["quads"]
        # Each output quad is one of the source quads (all of different sizes) scaled by 0.5 +- 10 %.
        ratios = np.ptp(quads, axis=1)[:, None, :] / np.ptp(sample.quads, axis=1)[None, :, :]
        matches = np.all((0.44 < ratios) & (ratios < 0.56), axis=2)
        assert len(quads) and matches.any(axis=1).all(), ratios


def test_make_example_output_shapes_and_rgb(tmp_path):
    sample = marked_scene(tmp_path)
    example = augmentation.make_example(sample, np.random.default_rng(1), augmentation.AugmentConfig(input_size=128))
    assert example["score_map"].shape == (32, 32, 1) and example["geo_map"].shape == (32, 32, 5)
    assert example["training_mask"].shape == (32, 32, 1)
    assert example["image"].shape == (128, 128, 3) and example["image"].dtype == np.uint8
    assert all(example[key].dtype == np.float32 for key in ("score_map", "geo_map", "training_mask"))



# --------------------------------------------------------------------------- text_width_range (issue 12)
def _plate_scene(folder: Path) -> Sample:
    """A 640x480 noise image with one care plate (80x20 px) and one don't-care box."""
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "plate.png"), image)
    quads = np.array([[[300, 200], [380, 200], [380, 220], [300, 220]],
                      [[50, 50], [120, 50], [120, 70], [50, 70]]], np.float32)
    return Sample(str(folder / "plate.png"), None, quads, np.array([False, True]), ("AB12", "###"), (480, 640))


def test_text_width_range_spans_the_range_and_targets_round_trip(tmp_path):
    import geometry

    sample = _plate_scene(tmp_path)
    low, high, size = 0.03, 0.6, 256
    config = augmentation.AugmentConfig(input_size=size, background_ratio=0.0, text_width_range=(low, high),
                                        min_text_size=1)
    widths = []
    for slot in range(120):
        example = augmentation.make_example(sample, np.random.default_rng([7, 0, slot]), config)
        quads = example["quads"]
        care = quads[~example["dont_care"]]
        assert len(care) == 1  # the plate is always the chosen box: the only care box
        widths.append(np.ptp(care[0, :, 0]) / size)
        # Targets decode back to the output quads (every positive pixel restores its own quad).
        boxes = geometry.decode_rbox(example["score_map"], example["geo_map"], 0.5)
        if len(boxes):
            decoded = geometry.order_clockwise_from_top_left(boxes[:, :8].reshape(-1, 4, 2))
            error = np.abs(decoded[:, None] - quads[None]).max(axis=(2, 3)).min(axis=1)
            assert error.max() < 1e-3
    widths = np.array(widths)
    assert widths.min() >= low * 0.999 and widths.max() <= high * 1.001
    # Log-uniform: 5 % / 95 % quantiles at low * 20**0.05 = 0.035 and high / 20**0.05 = 0.52.
    p5, p50, p95 = np.percentile(widths, [5, 50, 95])
    assert p5 < 0.045 and p95 > 0.45 and 0.08 < p50 < 0.2, (p5, p50, p95)


def test_text_width_range_is_deterministic_keeps_backgrounds_and_validates(tmp_path):
    sample = _plate_scene(tmp_path)
    config = augmentation.AugmentConfig(input_size=128, background_ratio=0.5, text_width_range=(0.1, 0.3))
    backgrounds = 0
    for seed in range(16):
        first = augmentation.make_example(sample, np.random.default_rng(seed), config)
        again = augmentation.make_example(sample, np.random.default_rng(seed), config)
        np.testing.assert_array_equal(first["image"], again["image"])
        np.testing.assert_array_equal(first["geo_map"], again["geo_map"])
        backgrounds += len(first["quads"]) == 0
    assert 3 <= backgrounds <= 13  # background_ratio still draws EAST-tf2's text-free crops
    for bad in ((0.0, 0.5), (0.5, 0.1), (0.2, 1.5), (0.1,), "x"):
        with pytest.raises(ValueError, match="text_width_range"):
            augmentation.AugmentConfig(text_width_range=bad)


def test_text_width_range_backgrounds_are_text_free_windows_at_text_crop_scales(tmp_path):
    """Background crops show a 1280x960 image at the zoom text crops do (its 80 px plate would be
    10-30 % of the 128 px input), in a window that touches no box, so non-text is learned at text's scales."""
    image = np.full((960, 1280, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), image)
    quads = np.array([[[300, 200], [380, 200], [380, 220], [300, 220]]], np.float32)
    sample = Sample(str(tmp_path / "wide.png"), None, quads, np.array([False]), ("AB12",), (960, 1280))
    config = augmentation.AugmentConfig(input_size=128, background_ratio=1.0, text_width_range=(0.1, 0.3))
    found = 0
    for seed in range(32):
        plan = augmentation._plan_text_size_background(sample, sample.image_hw, np.random.default_rng(seed), config)
        example = augmentation.make_example(sample, np.random.default_rng(seed), config)
        assert len(example["quads"]) == 0 and example["score_map"].max() == 0
        if plan is None:
            continue  # no text-free window at this scale: EAST-tf2's background crop instead
        found += 1
        scale_x, scale_y = plan.scale_xy
        assert 0.1 * 128 * 0.999 <= 80 * scale_x <= 0.3 * 128 * 1.001
        xmin, ymin, xmax, ymax = plan.crop_box
        assert xmax - xmin < 128 and ymax - ymin < 128 and plan.selected.size == 0
        scaled = sample.quads * np.array([scale_x, scale_y])
        assert ((scaled[:, :, 0].max(axis=1) < xmin) | (scaled[:, :, 0].min(axis=1) > xmax + 1)
                | (scaled[:, :, 1].max(axis=1) < ymin) | (scaled[:, :, 1].min(axis=1) > ymax + 1)).all()
    assert found >= 24, found


def _plates_of_two_aspects(folder: Path) -> list[Sample]:
    """Two 640x480 noise images, each with one care plate 20 px tall: a 2:1 US plate (40 px wide)
    and a 4.7:1 EU plate (94 px wide) rotated by 20 degrees."""
    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "scene.png"), image)
    us = np.array([[300, 200], [340, 200], [340, 220], [300, 220]], np.float64)
    eu = np.array([[0, 0], [94, 0], [94, 20], [0, 20]], np.float64)
    turn = np.deg2rad(20.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    eu = eu @ rotation.T + [250, 200]
    return [Sample(str(folder / "scene.png"), None, quad[None].astype(np.float32), np.zeros(1, bool), ("P",),
                   (480, 640)) for quad in (us, eu)]


def test_text_height_range_teaches_plates_of_every_aspect_at_the_same_heights(tmp_path):
    import geometry

    low, high, size = 0.05, 0.3, 128
    config = augmentation.AugmentConfig(input_size=size, background_ratio=0.0, text_height_range=(low, high),
                                        min_text_size=1)
    for sample in _plates_of_two_aspects(tmp_path):
        heights, widths = [], []
        for slot in range(60):
            example = augmentation.make_example(sample, np.random.default_rng([3, slot]), config)
            quad = example["quads"][0].astype(np.float64)
            # The -10..+9 % y jitter changes a box's height by at most 10 %, whatever its turn.
            heights.append(geometry.text_heights(quad) / size)
            widths.append(np.ptp(quad[:, 0]) / size)
        heights = np.array(heights)
        assert heights.min() >= low * 0.89 and heights.max() <= high * 1.1, (heights.min(), heights.max())
        assert np.percentile(heights, 10) < 0.08 and np.percentile(heights, 90) > 0.18
        if np.ptp(sample.quads[0, :, 0]) > 60:  # the EU plate: 4.7x as wide as tall, cut to fit the input
            assert max(widths) <= (size - 2) / size + 1e-6 and max(widths) > 0.9
    with pytest.raises(ValueError, match="exclude each other"):
        augmentation.AugmentConfig(text_width_range=(0.1, 0.3), text_height_range=(0.05, 0.2))
    for bad in ((0.0, 0.5), (0.5, 0.1), (0.2, 1.5)):
        with pytest.raises(ValueError, match="text_height_range"):
            augmentation.AugmentConfig(text_height_range=bad)


def test_covered_matches_eastf2_slices_and_empty_input():
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 90, 12)
    ends = starts + rng.integers(0, 15, 12)  # some empty ranges, some past the end
    expected = np.zeros(100, bool)
    for start, end in zip(starts, ends):
        expected[start:end] = True
    np.testing.assert_array_equal(augmentation._covered(starts, ends, 100), expected)
    assert not augmentation._covered(np.zeros(0, np.int64), np.zeros(0, np.int64), 5).any()


def _plate_sample(box_width: float, image_hw=(100, 200)) -> Sample:
    """A sample (no file: only the crop plan is drawn) with one box_width x 10 px box."""
    quad = np.array([[[20, 40], [20 + box_width, 40], [20 + box_width, 50], [20, 50]]], np.float32)
    return Sample("unused.jpg", None, quad, np.zeros(1, bool), ("plate",), image_hw)


def test_implied_max_side_len_is_the_median_side_training_shows_text_at():
    # Every text crop scales its box to 0.25 * 64 = 16 px wide: a 50 px box by 0.32, a 25 px box by
    # 0.64, so the 200 px wide image is seen 64 resp. 128 px wide (the 1.1 y jitter keeps 100 px below).
    config = augmentation.AugmentConfig(input_size=64, text_width_range=(0.25, 0.25), background_ratio=0.25)
    sides = augmentation.training_view_sides([_plate_sample(50)], config, draws=40)
    assert len(sides) == 40  # every draw is a text crop, whatever background_ratio (text-free crops imply nothing)
    np.testing.assert_allclose(sides, 64.0)
    assert augmentation.implied_max_side_len([_plate_sample(50)], config, draws=32) == 64
    assert augmentation.implied_max_side_len([_plate_sample(25)], config, draws=32) == 128
    # Three 25 px samples to one 50 px one: the median is 128; the draws are a pure function of the seed.
    mixed = [_plate_sample(25)] * 3 + [_plate_sample(50)]
    assert augmentation.implied_max_side_len(mixed, config, draws=64) == 128
    np.testing.assert_array_equal(augmentation.training_view_sides(mixed, config, draws=32, seed=3),
                                  augmentation.training_view_sides(mixed, config, draws=32, seed=3))
    # No box to care about, or no known size: nothing to imply.
    dont_care = dataclasses.replace(_plate_sample(50), dont_care=np.ones(1, bool))
    assert augmentation.implied_max_side_len([dont_care], config) is None
    assert augmentation.implied_max_side_len([_plate_sample(50, image_hw=None)], config) is None


class _Draws:
    """A stand-in rng whose uniform() returns given arrays in turn (jitter_colors draws twice)."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def uniform(self, low, high, size):
        value = np.asarray(self.draws.pop(0), np.float64)
        assert value.shape == (size,) and np.all((low <= value) & (value <= high))
        return value


def test_jitter_colors_hand_computed():
    image = np.array([[[0, 0, 0], [100, 200, 50]]], np.uint8)  # BGR; luma of the second 143.75
    # Contrast 0.5 pulls both pixels halfway to the mean luma 71.875: (35.94,) * 3 and
    # (85.94, 135.94, 60.94), lumas 35.94 and 107.81; saturation 0.5 then pulls each halfway to its luma.
    halfway = augmentation.jitter_colors(image, _Draws([1.0, 0.5, 0.5], [1.0, 1.0, 1.0]), 0.5)
    np.testing.assert_array_equal(halfway, [[[36, 36, 36], [97, 122, 84]]])  # 96.88, 121.88, 84.38 rounded
    # Brightness 1.2, full contrast and saturation, then a cast halving blue (strength 0.9: gains 0.55..1.45).
    cast = augmentation.jitter_colors(image, _Draws([1.2, 1.0, 1.0], [0.6, 1.0, 1.4]), 0.9)
    np.testing.assert_array_equal(cast, [[[0, 0, 0], [72, 240, 84]]])  # 120*0.6, 240, 60*1.4
    assert augmentation.jitter_colors(image, np.random.default_rng(0), 0.0).tolist() == image.tolist()


# color_jitter changes every crop; degrade skips each of its three degradations with probability 1/2, so
# 1/8 of crops draw none.
@pytest.mark.parametrize("name, value, least_changed, out_of_range",
                         [("color_jitter", 0.4, 6, 1.0), ("degrade", 1.0, 4, 1.5)])
def test_pixel_augmentations_change_the_crop_never_its_labels_or_padding(tmp_path, name, value, least_changed,
                                                                         out_of_range):
    sample = marked_scene(tmp_path)
    plain_config = augmentation.AugmentConfig(input_size=512, random_scale=(0.5,))  # padded crops
    changed_config = dataclasses.replace(plain_config, **{name: value})
    changed = 0
    for seed in range(6):
        plain = augmentation.make_example(sample, np.random.default_rng(seed), plain_config)
        altered = augmentation.make_example(sample, np.random.default_rng(seed), changed_config)
        for key in ("score_map", "geo_map", "training_mask", "quads"):
            np.testing.assert_array_equal(plain[key], altered[key])  # the same crop: pixel draws come last
        padding_rows = ~plain["image"].any(axis=(1, 2))
        assert padding_rows.any()
        assert not altered["image"][padding_rows].any()  # EAST-tf2's black padding stays black
        changed += not np.array_equal(plain["image"], altered["image"])
    assert changed >= least_changed
    with pytest.raises(ValueError, match=name):
        augmentation.AugmentConfig(**{name: out_of_range})


class _CameraDraws:
    """A stand-in rng for degrade_camera: random() gives which degradations apply, uniform() their sizes."""

    def __init__(self, apply, sizes):
        self.apply, self.sizes = np.asarray(apply, float), np.asarray(sizes, float)
        self.normal_calls = 0

    def random(self, size):
        assert size == 3
        return np.where(self.apply, 0.25, 0.75)

    def uniform(self, low, high):
        assert np.all((np.asarray(low) <= self.sizes) & (self.sizes <= np.asarray(high)))
        return self.sizes

    def normal(self, mean, sigma, shape):
        self.normal_calls += 1
        return np.random.default_rng(0).normal(mean, sigma, shape)


def test_degrade_camera_applies_each_degradation_as_drawn():
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::2] = 200  # one-pixel columns: the finest detail a crop can hold
    untouched = augmentation.degrade_camera(stripes, _CameraDraws([0, 0, 0], [2.0, 4.0, 50]))
    assert untouched is not stripes and untouched.tolist() == stripes.tolist()
    # Lost resolution, 2x: each pair of columns averages to 100 and comes back flat.
    blurred = augmentation.degrade_camera(stripes, _CameraDraws([1, 0, 0], [2.0, 4.0, 50]))
    assert blurred.shape == stripes.shape and blurred.dtype == np.uint8
    np.testing.assert_array_equal(blurred, np.full_like(stripes, 100))
    # Noise of sigma 6 grey levels on a flat grey: mean kept, spread as drawn.
    grey = np.full((64, 64, 3), 128, np.uint8)
    draws = _CameraDraws([0, 1, 0], [2.0, 6.0, 50])
    noisy = augmentation.degrade_camera(grey, draws).astype(float)
    assert draws.normal_calls == 1 and abs(noisy.mean() - 128) < 0.5 and 5.5 < noisy.std() < 6.5
    # JPEG at quality 30: exactly OpenCV's round trip at that quality.
    ok, encoded = cv2.imencode(".jpg", stripes, [cv2.IMWRITE_JPEG_QUALITY, 30])
    np.testing.assert_array_equal(augmentation.degrade_camera(stripes, _CameraDraws([0, 0, 1], [2.0, 4.0, 30])),
                                  cv2.imdecode(encoded, cv2.IMREAD_COLOR))
