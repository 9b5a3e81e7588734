"""bench/bench_demo_seeds.py: the means, the table and the variant's ratio on hand-made counts; checkout keys."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import bench_demo_seeds as seeds  # noqa: E402

SIZES = {"plates_dev test": 44, "plates_ro test": 107, "plates_dev train": 178, "plates_ro train": 427}


def _run(dev_test, ro_test, dev_train, ro_train):
    return dict(zip(seeds.PHOTO_SETS, (dev_test, ro_test, dev_train, ro_train)))


def test_means_and_the_variants_ratio_by_hand():
    results = {"this": {0: _run(24, 50, 125, 164), 1: _run(27, 45, 115, 176)},
               "variant": {0: _run(25, 54, 116, 203), 1: _run(25, 47, 105, 195)}}
    assert seeds.summarize(results["this"]) == {"plates_dev test": 25.5, "plates_ro test": 47.5,
                                                "plates_dev train": 120.0, "plates_ro train": 170.0, "sum": 363.0}
    assert seeds.summarize(results["variant"])["sum"] == 385.0  # (398 + 372) / 2
    table = seeds.format_table(results, SIZES)
    assert "        24/44   " in table and "  363" in table and "  372" in table
    assert "variant / this: 1.061 of the photos all correct" in table  # 385 / 363


def test_seeds_must_be_distinct_integers():
    assert seeds.parse_seeds("0,1,3") == [0, 1, 3]
    for bad in ("", "0,0", "a"):
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            seeds.parse_seeds(bad)


def test_a_variant_without_demo_py_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        seeds.main(["--variant", str(tmp_path)])
    assert stopped.value.code == 2 and "no demo.py there" in capsys.readouterr().err


def test_checkout_key_follows_uncommitted_changes(tmp_path):
    def git(*arguments):
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    clean = seeds.checkout_key(tmp_path)
    assert seeds.checkout_key(tmp_path) == clean
    (tmp_path / "a.py").write_text("x = 2\n")
    assert seeds.checkout_key(tmp_path) != clean
