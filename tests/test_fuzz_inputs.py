"""Fuzz test of the whole input surface: generated folders mixing every annotation format with
random corruptions, fed to ``data_preprocessor.py stats``, a 2-step ``train.py``, ``eval.py`` and
serve.py's upload handler.

Each folder (one per seed) holds a few good plate-format images (the folder auto-detects as
plate) plus one file per corruption: truncated, zero-byte and giant-dimension images; annotation
lines with swapped fields, NaN, huge and negative numbers, too few numbers, self-intersecting
corners; wrong encodings; and other formats' files (icdar2015, labelme, VOC, YOLO labels). The
tests assert exit codes, that every bad file is named, that no input file changed and that no
traceback is printed.
"""
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

# A module fixture trains a 2-step checkpoint and each eval/serve case loads TensorFlow: about 3 min
# on the shared 2-core machine, so outside the fast suite (make test runs it).
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
GOOD_LINE = "10 20 90 20 90 50 10 50 AB12"


def _jpeg(rng, hw=(96, 128)) -> bytes:
    image = rng.integers(0, 60, (*hw, 3), dtype=np.uint8)
    cv2.rectangle(image, (10, 20), (90, 50), (255, 255, 255), -1)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _giant_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG header announcing width x height pixels, with one tiny IDAT chunk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def _bad_plate_lines(rng) -> dict[str, bytes]:
    """Annotation text for one image each: stem -> file bytes."""
    numbers = [10, 20, 90, 20, 90, 50, 10, 50]
    swapped = numbers[:]
    swapped[0], swapped[1] = "AB12", swapped[0]
    return {
        "nan": b"10 20 nan 20 90 50 10 50 X\n",
        "inf": b"10 20 inf 20 90 50 10 50 X\n",
        "huge": f"10 20 {10.0 ** rng.integers(20, 300):g} 20 90 50 10 50 X\n".encode(),
        "negative": b"-5000 -5000 -4000 -5000 -4000 -4000 -5000 -4000 X\n10 20 -90 20 90 -50 10 50 Y\n",
        "swapped": (" ".join(str(value) for value in swapped) + " 50\n").encode(),
        "seven": b"10 20 90 20 90 50 10\n",
        "zorder": b"10 20 90 20 10 50 90 50 X\n",
        "truncated": GOOD_LINE.encode()[: int(rng.integers(3, 15))],
        "utf16": GOOD_LINE.encode("utf-16"),
        "latin1": "10 20 90 20 90 50 10 50 Ä\xe9\n".encode("latin-1"),
        "binary": bytes(rng.integers(0, 256, 64, dtype=np.uint8)),
    }


def make_fuzz_folder(folder: Path, seed: int) -> dict[str, str]:
    """Writes one fuzz folder; returns bad file name -> what is wrong with it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for index in range(4):
        (folder / f"good_{index}.jpg").write_bytes(_jpeg(rng))
        (folder / f"good_{index}.txt").write_text(GOOD_LINE + "\n")
    bad = {}
    for stem, text in _bad_plate_lines(rng).items():
        (folder / f"{stem}.jpg").write_bytes(_jpeg(rng))
        (folder / f"{stem}.txt").write_bytes(text)
        bad[f"{stem}.txt"] = stem
    full = _jpeg(rng)
    (folder / "cut.jpg").write_bytes(full[: int(rng.integers(10, len(full) - 10))])
    (folder / "cut.txt").write_text(GOOD_LINE + "\n")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "giant.png").write_bytes(_giant_png())
    (folder / "giant.txt").write_text(GOOD_LINE + "\n")
    (folder / "fake.jpg").write_bytes(b"this is not an image" * int(rng.integers(1, 5)))
    bad.update({"cut.jpg": "truncated image", "empty.jpg": "zero-byte image", "giant.png": "giant dimensions",
                "fake.jpg": "not an image"})
    # Other formats' files among plate files.
    (folder / "icdar.jpg").write_bytes(_jpeg(rng))
    (folder / "gt_icdar.txt").write_text("10,20,90,20,90,50,10,50,AB\n")
    (folder / "labelme.jpg").write_bytes(_jpeg(rng))
    (folder / "labelme.json").write_text(json.dumps({"shapes": [{"label": "A", "points": [[1, 2]]}]})[:-int(rng.integers(1, 9))])
    (folder / "voc.jpg").write_bytes(_jpeg(rng))
    (folder / "voc.xml").write_text("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>")
    bad.update({"icdar.jpg": "icdar2015 file", "labelme.jpg": "labelme file", "voc.jpg": "voc file"})
    return bad


def tree_hashes(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def _run(args, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """(root, {seed: (folder, bad files, hashes)}) and a 2-step checkpoint trained on seed 0's folder."""
    root = tmp_path_factory.mktemp("fuzz")
    folders = {}
    for seed in SEEDS:
        folder = root / f"data_{seed}"
        bad = make_fuzz_folder(folder, seed)
        folders[seed] = (folder, bad, tree_hashes(folder))
    train = _run(["train.py", f"--training_data_path={folders[0][0]}", f"--checkpoint_path={root / 'ckpt'}",
                  "--input_size=64", "--batch_size=2", "--nb_workers=0", "--backbone=tiny",
                  "--backbone_weights=none", "--max_steps=2", "--save_checkpoint_steps=2", "--log_steps=1"])
    return root, folders, train


@pytest.mark.parametrize("seed", SEEDS)
def test_stats_names_every_bad_file(fuzz, seed):
    _, folders, _ = fuzz
    folder, bad, hashes = folders[seed]
    result = _run([str(REPO_ROOT / "data_preprocessor.py"), "stats", f"--data_path={folder}", "--json"], timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    named = {Path(item["file"]).name for item in stats["skipped"] + stats["fixed"]}
    # The good images, plus those whose only fault was a box partly outside (clipped, under "fixed").
    clipped = {Path(item["image"] if "image" in item else item["file"]).stem for item in stats["fixed"]}
    assert stats["format"] == "plate" and stats["images"] == stats["boxes"] == 4 + len(clipped - {"good"}), stats
    missing = {name: why for name, why in bad.items() if name not in named}
    assert not missing, missing
    strict = _run([str(REPO_ROOT / "data_preprocessor.py"), "stats", f"--data_path={folder}", "--strict"], timeout=60)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert tree_hashes(folder) == hashes


def test_train_two_steps_on_the_fuzz_folder(fuzz):
    root, folders, train = fuzz
    assert train.returncode == 0, train.stderr[-3000:]
    assert "Traceback" not in train.stdout + train.stderr
    assert "images, " in train.stdout and " 0 boxes" not in train.stdout
    assert (root / "ckpt" / "ckpt-2").exists()
    folder, _, hashes = folders[0]
    assert tree_hashes(folder) == hashes


def test_eval_on_the_fuzz_folder(fuzz):
    root, folders, _ = fuzz
    folder, bad, hashes = folders[1]
    common = [f"--test_data_path={folder}", f"--model_path={root / 'ckpt'}", "--max_side_len=256"]
    # Scoring against this folder's broken ground truth: one line naming a file, before any work.
    scored = _run(["eval.py", *common, f"--output_dir={root / 'eval_scored'}", f"--gt_path={folder}"])
    assert scored.returncode == 2 and "Traceback" not in scored.stdout + scored.stderr
    errors = [line for line in scored.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(folder) in errors[0], scored.stderr[-2000:]
    assert not (root / "eval_scored").exists()
    result = _run(["eval.py", *common, f"--output_dir={root / 'eval_out'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    summary = json.loads((root / "eval_out" / "summary.json").read_text())
    unreadable = {Path(item["image"]).name for item in summary["unreadable"]}
    assert unreadable == {"cut.jpg", "empty.jpg", "giant.png", "fake.jpg"}, summary["unreadable"]
    for name in unreadable:
        assert name in result.stderr, name
    assert tree_hashes(folder) == hashes


def test_serve_upload_handler_on_every_file(fuzz):
    pytest.importorskip("flask")
    import exported_models
    import serve

    root, folders, _ = fuzz
    predict = exported_models.load_predictor(str(root / "ckpt"))
    client = serve.create_app(predict, serve.ServeConfig(max_pixels=4_000_000)).test_client()
    cases = 0
    for seed in SEEDS:
        folder, _, hashes = folders[seed]
        for path in sorted(folder.iterdir()):
            response = client.post("/api/detect?max_side_len=256", content_type="multipart/form-data",
                                   data={"image": (io.BytesIO(path.read_bytes()), path.name)})
            cases += 1
            body = response.get_json()
            assert body is not None, (path.name, response.status_code)
            if path.name.startswith("good_") and path.suffix == ".jpg":
                assert response.status_code == 200, (path.name, body)
            elif path.suffix in (".txt", ".json", ".xml") or path.name in ("empty.jpg", "fake.jpg", "cut.jpg",
                                                                            "giant.png"):
                assert response.status_code in (200, 400, 413, 415, 422), (path.name, response.status_code)
                if response.status_code != 200:
                    assert "error" in body and "Traceback" not in json.dumps(body), (path.name, body)
        assert tree_hashes(folder) == hashes
    assert cases > 60
