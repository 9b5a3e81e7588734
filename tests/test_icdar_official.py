"""`python icdar.py evaluate` against the official ICDAR 2015 Task 4.1 script's figures.

The figures in tests/data/icdar_official.json were computed once by the official script.py
(SakuraRiven/EAST evaluate/) on seeded submissions for the 500-file ICDAR 2015 test ground truth
(misses, splits, merges, duplicates, false positives, don't-care hits, empty and missing files);
tests/icdar_official_fixture.py regenerates the same submissions here and says how the JSON was made.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import icdar_official_fixture as fixture

REPO_ROOT = Path(__file__).resolve().parents[1]
FIGURES = json.loads((Path(__file__).parent / "data" / "icdar_official.json").read_text())


@pytest.fixture(scope="module")
def ground_truth(shared_data_module):
    gt_zip = shared_data_module / "icdar_real" / "icdar2015_test_gt_all.zip"
    if not gt_zip.is_file():
        pytest.skip("icdar_real/icdar2015_test_gt_all.zip is not present")
    files = fixture.read_ground_truth(gt_zip)
    assert len(files) == 500
    return gt_zip, files


@pytest.fixture(scope="module")
def shared_data_module():
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA


def _evaluate_cli(gt_zip: Path, res_zip: Path) -> dict:
    result = subprocess.run([sys.executable, "icdar.py", "evaluate", f"--gt_path={gt_zip}",
                             f"--pred_path={res_zip}", "--json"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_fixture_generator_is_unchanged():
    assert FIGURES["generator_version"] == fixture.GENERATOR_VERSION
    assert [case["seed"] for case in FIGURES["cases"]] == list(fixture.SEEDS)


@pytest.mark.parametrize("case", FIGURES["cases"], ids=lambda case: f"seed{case['seed']}")
def test_evaluate_matches_official_script(ground_truth, case, tmp_path):
    gt_zip, gt_files = ground_truth
    files, missing = fixture.build_submission(case["seed"], gt_files)
    # A drifting generator would score other submissions than the official script did.
    assert fixture.files_digest(files) == case["sha256"]
    assert (len(files), len(missing)) == (case["files"], case["missing"])
    assert missing and any(not text for text in files.values()), "the case must hold missing and empty files"
    ours = _evaluate_cli(gt_zip, fixture.write_zip(files, tmp_path / "res.zip"))
    assert ours["images"] == 500
    for key in ("precision", "recall", "hmean"):
        assert ours[key] == pytest.approx(case["official"][key], abs=1e-4), key


def test_missing_result_files_count_as_empty(ground_truth, tmp_path):
    """The official script scores an image without a result file as one without detections."""
    gt_zip, gt_files = ground_truth
    case = FIGURES["cases"][0]
    files, missing = fixture.build_submission(case["seed"], gt_files)
    filled = fixture.write_zip({**files, **{name: "" for name in missing}}, tmp_path / "filled.zip")
    left_out = fixture.write_zip(files, tmp_path / "left_out.zip")
    assert _evaluate_cli(gt_zip, filled) == _evaluate_cli(gt_zip, left_out)
