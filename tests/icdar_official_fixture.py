"""Seeded ICDAR 2015 submissions against the real 500-image test ground truth, and the official
scorer's figures for them (tests/data/icdar_official.json; test_icdar_official.py reads both).

    python tests/icdar_official_fixture.py --reference_repo /tmp/ref > tests/data/icdar_official.json

--reference_repo is a checkout holding the official script.py + rrc_evaluation_funcs.py (at its root
or under evaluate/, as in SakuraRiven/EAST); it is read from there and never copied into this project.
The generator draws, per ground-truth file, from bench/compare_icdar_official.py's ``make_submission``
(jittered copies at several scales, splits, merges, duplicates, degenerate boxes, random false
positives, and so hits on ``###`` regions too), or leaves the result file out or empty. The JSON holds
each submission's seed, the generator version and a SHA-256 of its files, so a drifting generator
fails the test instead of silently scoring different submissions.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
GT_ZIP = REPO_ROOT.parent / "shared" / "data" / "icdar_real" / "icdar2015_test_gt_all.zip"
GENERATOR_VERSION = 1
SEEDS = (0, 1, 2)
MISSING_SHARE, EMPTY_SHARE = 0.08, 0.06
COMMAND = "python tests/icdar_official_fixture.py --reference_repo <checkout of SakuraRiven/EAST>"


def _bench():
    """bench/compare_icdar_official.py as a module (its submission generator)."""
    path = REPO_ROOT / "bench" / "compare_icdar_official.py"
    spec = importlib.util.spec_from_file_location("compare_icdar_official", path)
    module = importlib.util.module_from_spec(spec)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    spec.loader.exec_module(module)
    return module


def read_ground_truth(gt_zip: Path = GT_ZIP) -> dict[str, bytes]:
    """gt_img_<id>.txt name -> raw bytes, for every file of the zip."""
    with zipfile.ZipFile(gt_zip) as archive:
        return {name: archive.read(name) for name in sorted(archive.namelist()) if name.endswith(".txt")}


def build_submission(seed: int, ground_truth: dict[str, bytes]) -> tuple[dict[str, str], list[str]]:
    """Result files for ``ground_truth`` drawn from ``seed``.

    Returns:
        (files, missing): res_img_<id>.txt name -> text (some empty), and the res_ names left out.
    """
    import icdar

    bench = _bench()
    rng = np.random.default_rng(seed)
    files, missing = {}, []
    for name in sorted(ground_truth, key=lambda gt_name: int(gt_name[len("gt_img_"):-len(".txt")])):
        res_name = "res_" + name[len("gt_"):]
        draw = rng.random()
        if draw < MISSING_SHARE:
            missing.append(res_name)
            continue
        if draw < MISSING_SHARE + EMPTY_SHARE:
            files[res_name] = ""
            continue
        annotation = icdar.parse_annotation_text(icdar.decode_text(ground_truth[name]), name)
        quads = list(annotation.quads.astype(np.float64))
        files[res_name] = "\n".join(bench.quad_line(quad) for quad in bench.make_submission(rng, quads))
    return files, missing


def files_digest(files: dict[str, str]) -> str:
    """SHA-256 over the files' names and contents in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


def write_zip(files: dict[str, str], path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(files):
            archive.writestr(name, files[name].encode("utf-8"))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference_repo", required=True, type=Path)
    args = parser.parse_args()
    import logging
    import tempfile

    logging.getLogger("icdar").setLevel(logging.ERROR)
    official = _bench().load_official(args.reference_repo)
    ground_truth = read_ground_truth()
    cases = []
    with tempfile.TemporaryDirectory() as temp:
        gt_zip = write_zip({name: data.decode("utf-8") for name, data in ground_truth.items()},
                           Path(temp) / "gt.zip")
        params = official.default_evaluation_params()
        for seed in SEEDS:
            files, missing = build_submission(seed, ground_truth)
            res_zip = write_zip(files, Path(temp) / f"res{seed}.zip")
            official.validate_data(str(gt_zip), str(res_zip), params)
            method = official.evaluate_method(str(gt_zip), str(res_zip), params)["method"]
            # The same submission with the missing files present and empty scores the same.
            filled = write_zip({**files, **{name: "" for name in missing}}, Path(temp) / f"filled{seed}.zip")
            filled_method = official.evaluate_method(str(gt_zip), str(filled), params)["method"]
            assert filled_method == method, (method, filled_method)
            cases.append({"seed": seed, "sha256": files_digest(files), "files": len(files),
                          "empty": sum(not text for text in files.values()), "missing": len(missing),
                          "detections": sum(len(text.splitlines()) for text in files.values()),
                          "official": {key: method[key] for key in ("precision", "recall", "hmean")}})
    print(json.dumps({"command": COMMAND, "reference": "SakuraRiven/EAST evaluate/script.py @ cec7ae98f9c2",
                      "ground_truth": "icdar_real/icdar2015_test_gt_all.zip (500 files)",
                      "generator_version": GENERATOR_VERSION, "cases": cases}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
