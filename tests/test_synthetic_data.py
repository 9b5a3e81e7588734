"""Tests for synthetic_data.py: determinism, quad validity, plates hugged by their quads, decoys, file formats."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import synthetic_data as sd

SMALL = sd.PlateSceneConfig(width=320, height=240)


def _signed_area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def test_same_seed_same_image_and_annotations():
    image_a, quads_a, texts_a = sd.generate_plate_scene(sd.image_rng(7, 3), SMALL)
    image_b, quads_b, texts_b = sd.generate_plate_scene(sd.image_rng(7, 3), SMALL)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(quads_a, quads_b)
    assert texts_a == texts_b
    image_c, _, _ = sd.generate_plate_scene(sd.image_rng(8, 3), SMALL)
    assert not np.array_equal(image_a, image_c)


def test_image_k_does_not_depend_on_count(tmp_path):
    sd.write_plate_dataset(tmp_path / "three", 3, seed=5, config=SMALL)
    sd.write_plate_dataset(tmp_path / "one", 1, seed=5, config=SMALL, start=2)
    for suffix in (".jpg", ".txt"):
        name = "plate_00002" + suffix
        assert (tmp_path / "three" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


@pytest.mark.parametrize("seed", range(12))
def test_quads_inside_clockwise_from_top_left(seed):
    image, quads, texts = sd.generate_plate_scene(sd.image_rng(seed, 0), SMALL)
    assert image.shape == (SMALL.height, SMALL.width, 3) and image.dtype == np.uint8
    assert quads.dtype == np.float32 and quads.shape == (len(texts), 4, 2)
    assert 1 <= len(texts) <= 3
    for quad, text in zip(quads, texts):
        assert np.all(quad >= 0) and np.all(quad[:, 0] < SMALL.width) and np.all(quad[:, 1] < SMALL.height)
        assert _signed_area(quad) > 0, "quad must be clockwise on screen (y down)"
        assert int(np.argmin(quad.sum(axis=1))) == 0, "quad must start at the top-left point"
        assert text.isalnum() and text.isupper() or text.isdigit()
        width = np.linalg.norm(quad[1] - quad[0])
        # the sampled width is before the perspective warp, which can grow the near edge a little
        assert 0.6 * SMALL.min_plate_width * SMALL.width < width < 1.3 * SMALL.max_plate_width * SMALL.width


def test_plate_widths_are_photo_like_by_default_and_log_uniform_on_request():
    """Default: log-normal around 8 % of the width (spread 0.6 in log units) kept in [3 %, 60 %].
    By hand: 3 % is at z = ln(3/8)/0.6 = -1.635 (normal CDF 0.0511), 60 % at z = 3.358 (0.9996); the
    kept draw's median is at CDF 0.0511 + 0.5 * 0.9485 = 0.5254, z = 0.0637, width 8 % * exp(0.6 *
    0.0637) = 8.31 %; its first quartile at CDF 0.2882, z = -0.559, width 5.72 %. None: the log-uniform
    draw, whose median is the geometric mean of the bounds."""
    photo_like = sd.PlateSceneConfig()
    quantiles = np.linspace(0, 1, 2001)
    widths = np.array([sd.plate_width_fraction(q, photo_like) for q in quantiles])
    assert widths[0] == pytest.approx(0.03) and widths[-1] == pytest.approx(0.6)
    assert np.all(np.diff(widths) >= 0)
    assert np.median(widths) == pytest.approx(0.0831, rel=0.002)
    assert np.quantile(widths, 0.25) == pytest.approx(0.0572, rel=0.002)
    uniform = sd.PlateSceneConfig(typical_plate_width=None)
    assert sd.plate_width_fraction(0.5, uniform) == pytest.approx(np.sqrt(0.03 * 0.6))
    assert sd.plate_width_fraction(0.25, uniform) == pytest.approx(0.03 * (0.6 / 0.03) ** 0.25)
    # A typical width outside the range still fills the range, most plates near the closer bound.
    narrow = sd.PlateSceneConfig(min_plate_width=0.3, max_plate_width=0.5)
    assert 0.3 <= sd.plate_width_fraction(0.5, narrow) < 0.35
    with pytest.raises(ValueError, match="typical_plate_width"):
        sd.PlateSceneConfig(typical_plate_width=1.5)


def test_generated_plates_follow_the_width_draw():
    """Scenes of one plate each: the measured widths (top edge, after the warp) have the draw's median."""
    config = sd.PlateSceneConfig(width=320, height=240, min_plates=1, max_plates=1, max_angle=10.0, degrade=False,
                                 max_decoys=0)
    widths = [np.linalg.norm(quads[0][1] - quads[0][0]) / config.width
              for quads in (sd.generate_plate_scene(sd.image_rng(5, index), config)[1] for index in range(40))]
    assert 0.06 < np.median(widths) < 0.105


@pytest.mark.parametrize("layout", sd.LAYOUT_NAMES)
def test_quad_hugs_the_whole_plate(layout):
    """On the bare backdrop (no car, no decoys, no degradation) the quad covers exactly the plate's pixels."""
    config = sd.PlateSceneConfig(width=320, height=240, min_plate_width=0.1, max_plate_width=0.4, car_ratio=0.0,
                                 degrade=False, max_decoys=0, layouts=(layout,))
    for index in range(3):
        # generate_plate_scene draws the background first from the same generator state.
        background = sd.draw_street_background(sd.image_rng(3, index), config.width, config.height)
        image, quads, _ = sd.generate_plate_scene(sd.image_rng(3, index), config)
        difference = np.abs(image.astype(np.float32) - background.astype(np.float32)).max(axis=2)
        inside = np.zeros(difference.shape, np.uint8)
        for quad in quads:
            one = np.zeros_like(inside)
            cv2.fillPoly(one, [np.rint(quad).astype(np.int32)], 1)
            inside |= one
            core = cv2.erode(one, np.ones((3, 3), np.uint8))  # fillPoly also takes the boundary pixels
            assert np.mean(difference[core > 0] > 0) > 0.95, "the quad must cover the plate, not background"
        # Outside the plates (grown by a pixel for anti-aliasing) the image is the bare background:
        # nothing of the plate (band, border, screws) sticks out of its quad.
        outside = cv2.dilate(inside, np.ones((3, 3), np.uint8)) == 0
        assert difference[outside].max() == 0


def test_decoys_and_cars_are_not_annotated():
    config = sd.PlateSceneConfig(width=320, height=240, min_plates=1, max_plates=1, car_ratio=1.0, max_decoys=6,
                                 degrade=False)
    drawn_outside = []
    for index in range(6):
        background = sd.draw_street_background(sd.image_rng(5, index), config.width, config.height)
        image, quads, texts = sd.generate_plate_scene(sd.image_rng(5, index), config)
        assert len(quads) == len(texts) <= 1
        changed = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(axis=2) > 0
        for quad in quads:
            cv2.fillPoly(changed.view(np.uint8), [np.rint(quad).astype(np.int32)], 0)
        drawn_outside.append(changed.mean())
    # cars, signs, blank plates, lamps and grilles cover much of the image, yet only the plate is annotated
    assert np.mean(drawn_outside) > 0.05


@pytest.mark.parametrize("layout", sd.LAYOUT_NAMES)
def test_every_layout_renders_with_characters(layout):
    rng = np.random.default_rng(0)
    for _ in range(4):
        plate, rows, plate_metres = sd.render_plate(rng, layout)
        assert plate.dtype == np.uint8 and plate.ndim == 3 and 1.2 < plate.shape[1] / plate.shape[0] < 5.0
        assert rows and len(rows) <= 2 and 0.2 < plate_metres < 0.6
        assert sd.plate_annotation_text(rows).isalnum()
        gray = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY)
        assert gray.std() > 25, "characters contrast with the plate"
    with pytest.raises(ValueError, match="layout"):
        sd.render_plate(rng, "atlantis")


def test_fonts_load_and_hershey_fallback_draws():
    for role in ("plate", "label"):
        fonts = sd.plate_fonts(role)
        assert fonts and all(set(sd.GLYPH_CHARS) <= set(font.glyphs) for font in fonts)
    hershey = sd.GlyphFont("hershey", sd._glyphs_from_hershey(sd.HERSHEY_FONTS[0]))
    for font in (hershey, sd.plate_fonts("plate")[0]):
        mask = sd.text_mask("AB 12", font)
        assert mask.ndim == 2 and mask.shape[1] > 2 * mask.shape[0] and mask.max() > 0.9
        canvas = np.full((40, 160, 3), 255, np.uint8)
        sd.draw_text(canvas, "AB 12", (10, 5, 150, 35), font, (0, 0, 0))
        ink = canvas.min(axis=2) < 128
        assert ink[5:35, 10:150].sum() == ink.sum() > 100, "text stays inside its box"


def test_degraded_plates_stay_visible():
    config = sd.PlateSceneConfig(width=320, height=240, min_plate_width=0.15, max_plate_width=0.25)
    contrasts = []
    for index in range(12):
        image, quads, _ = sd.generate_plate_scene(sd.image_rng(4, index), config)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        for quad in quads:
            mask = np.zeros(gray.shape, np.uint8)
            cv2.fillPoly(mask, [np.rint(quad).astype(np.int32)], 1)
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
            contrasts.append(gray[mask > 0].std())
    # Characters contrast with the plate; a dark plate in a shadow, blurred and noised, may be hard (as in
    # real photos), but never blank.
    assert len(contrasts) >= 12 and min(contrasts) > 5.0
    assert np.mean(np.array(contrasts) > 15.0) > 0.9


def test_quads_use_the_project_corner_order():
    assert not hasattr(sd, "order_quad")
    geometry = pytest.importorskip("geometry")
    _, quads, _ = sd.generate_plate_scene(sd.image_rng(11, 0), SMALL)
    np.testing.assert_array_equal(quads, geometry.order_clockwise_from_top_left(quads))


def test_plate_files_parse(tmp_path):
    paths = sd.write_plate_dataset(tmp_path, 4, seed=1, config=SMALL)
    assert [p.name for p in paths] == [f"plate_0000{k}.jpg" for k in range(4)]
    for path in paths:
        image = cv2.imread(str(path))
        assert image.shape == (SMALL.height, SMALL.width, 3)
        lines = path.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
        assert 1 <= len(lines) <= 3
        for line in lines:
            fields = line.split(" ")
            assert len(fields) == 9
            coords = np.array([int(v) for v in fields[:8]], np.float32).reshape(4, 2)
            assert _signed_area(coords) > 0
            assert fields[8].isalnum()


def test_plate_files_load_with_project_loader(tmp_path):
    data_preprocessor = pytest.importorskip("data_preprocessor")
    sd.write_plate_dataset(tmp_path, 3, seed=2, config=SMALL)
    report = data_preprocessor.load_dataset(str(tmp_path), "plate")
    assert len(report.samples) == 3 and not report.problems
    for sample in report.samples:
        expected = Path(sample.image_path).with_suffix(".txt").read_text().split()
        assert sample.texts[0] == expected[8]


def test_text_scene_files_are_icdar_style(tmp_path):
    sd.write_text_dataset(tmp_path, 6, seed=0, config=sd.TextSceneConfig(width=320, height=240))
    texts = []
    for k in range(1, 7):
        assert (tmp_path / f"img_{k}.jpg").is_file()
        for line in (tmp_path / f"gt_img_{k}.txt").read_text(encoding="utf-8").splitlines():
            fields = line.split(",")
            assert len(fields) == 9
            coords = np.array([int(v) for v in fields[:8]], np.float32).reshape(4, 2)
            assert _signed_area(coords) > 0
            texts.append(fields[8])
    assert "###" in texts and any(t != "###" for t in texts)


def test_cli_writes_files_and_rejects_bad_values(tmp_path, capsys):
    out = tmp_path / "cli"
    assert sd.main(["plates", "--output_dir", str(out), "--count", "2", "--seed", "3", "--width", "160", "--height", "128"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["plate_00000.jpg", "plate_00000.txt", "plate_00001.jpg", "plate_00001.txt"]
    assert sd.main(["plates", "--output_dir", str(out), "--count", "1", "--min_plate_width", "0.5", "--max_plate_width", "0.1"]) == 2
    assert "min_plate_width" in capsys.readouterr().err


def test_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="width and height"):
        sd.PlateSceneConfig(width=10, height=10)
    with pytest.raises(ValueError, match="max_plates"):
        sd.PlateSceneConfig(min_plates=3, max_plates=2)
    with pytest.raises(ValueError, match="clutter"):
        sd.PlateSceneConfig(clutter=1.5)
    with pytest.raises(ValueError, match="layouts"):
        sd.PlateSceneConfig(layouts=("eu", "mars"))
    with pytest.raises(ValueError, match="night_ratio"):
        sd.PlateSceneConfig(night_ratio=2.0)


def _edge_density(image) -> float:
    return float(cv2.Canny(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 50, 150).mean())


def test_less_clutter_gives_a_plainer_background():
    busy = [sd.draw_street_background(sd.image_rng(9, k), 320, 240, clutter=1.0) for k in range(6)]
    quiet = [sd.draw_street_background(sd.image_rng(9, k), 320, 240, clutter=0.0) for k in range(6)]
    assert sum(map(_edge_density, quiet)) < sum(map(_edge_density, busy))


def test_cli_output_passes_data_preprocessor_stats(tmp_path):
    out = tmp_path / "plates"
    assert sd.main(["plates", "--output_dir", str(out), "--count", "4", "--seed", "1", "--width", "320",
                    "--height", "240", "--max_plates", "2"]) == 0
    project = Path(sd.__file__).resolve().parent
    result = subprocess.run([sys.executable, "data_preprocessor.py", "stats", f"--data_path={out}", "--json"],
                            cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    expected = sum(len((out / f"plate_{k:05d}.txt").read_text().splitlines()) for k in range(4))
    assert stats["format"] == "plate" and stats["images"] == 4 and stats["boxes"] == expected
    assert stats["dont_care"] == 0 and not stats["skipped"] and not stats["fixed"]


def test_night_scenes_are_dark_with_lit_plates():
    def brightness(night_ratio):
        config = sd.PlateSceneConfig(width=320, height=240, min_plate_width=0.15, max_plate_width=0.3,
                                     night_ratio=night_ratio, max_plates=1)
        scene, plate = [], []
        for index in range(5):
            image, quads, _ = sd.generate_plate_scene(sd.image_rng(6, index), config)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
            mask = np.zeros(gray.shape, np.uint8)
            cv2.fillPoly(mask, [np.rint(q).astype(np.int32) for q in quads], 1)
            scene.append(gray[mask == 0].mean())
            plate.append(gray[mask > 0].mean())
        return np.mean(scene), np.mean(plate)

    day_scene, day_plate = brightness(0.0)
    night_scene, night_plate = brightness(1.0)
    assert night_scene < 0.7 * day_scene
    assert night_plate / night_scene > day_plate / day_scene, "plate lamps keep plates brighter than the street"


def test_fonts_fall_back_to_hershey_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `import PIL` raise ImportError
    sd.plate_fonts.cache_clear()
    try:
        fonts = sd.plate_fonts("plate")
        assert fonts and all(font.name.startswith("hershey") for font in fonts)
        plate, rows, _ = sd.render_plate(np.random.default_rng(1), "eu")
        assert cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).std() > 25 and rows
    finally:
        sd.plate_fonts.cache_clear()
