"""notebooks/east_colab.ipynb: valid nbformat, and every cell runs top to bottom in the dry mode."""
import json
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "notebooks" / "east_colab.ipynb"
UNTRACKED_CACHES = {".git", "__pycache__", ".pytest_cache"}


def repo_files() -> dict[str, tuple[int, int]]:
    """Every file of the project (caches aside): relative path -> (size, mtime in ns)."""
    files = {}
    for folder, subfolders, names in os.walk(REPO_ROOT):
        subfolders[:] = [name for name in subfolders if name not in UNTRACKED_CACHES]
        for name in names:
            path = Path(folder) / name
            stat = path.stat()
            files[str(path.relative_to(REPO_ROOT))] = (stat.st_size, stat.st_mtime_ns)
    return files


def test_notebook_is_valid_nbformat_4():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    sources = "\n".join(cell.source for cell in notebook.cells)
    for needed in ("drive.mount", "EAST_NOTEBOOK_DRY_RUN", "--checkpoint_path", "--pretrained_model_path",
                   "resumed from step", "eval.py", "data_preprocessor.py"):
        assert needed in sources, f"the notebook should mention {needed}"
    # Outputs are not stored: the notebook stays small and diffs stay readable.
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def test_notebook_install_cell_skips_tensorflow_cpu():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    install = next(cell.source for cell in notebook.cells if "requirements.txt" in cell.source and "pip" in cell.source)
    assert 'startswith("tensorflow-cpu")' in install


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_in_dry_mode(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for needed in ("train.py", "eval.py", "data_preprocessor.py"):
        if not (REPO_ROOT / needed).is_file():
            pytest.skip(f"{needed} is not there yet")
    monkeypatch.setenv("EAST_NOTEBOOK_DRY_RUN", "1")
    monkeypatch.setenv("EAST_NOTEBOOK_PROJECT", str(REPO_ROOT))
    monkeypatch.setenv("EAST_NOTEBOOK_WORKDIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    before = repo_files()
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    drive = tmp_path / "drive"
    assert (drive / "checkpoints" / "east_icdar2015").is_dir()
    assert (drive / "outputs" / "plates" / "summary.json").is_file()
    assert (drive / "plate_results.zip").is_file()
    assert (drive / "exported" / "saved_model").is_dir()
    outputs = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "resumed from step" in outputs
    # The figures cell prints summary.json's numbers: they parse, agree with the files and with each other.
    printed = {match[0]: match for match in re.findall(
        r"^(ICDAR 2015|plates)\s+precision ([\d.]+)\s+recall ([\d.]+)\s+hmean ([\d.]+)\s+(\d+)/(\d+) images all correct",
        outputs, flags=re.MULTILINE)}
    assert sorted(printed) == ["ICDAR 2015", "plates"], outputs[-3000:]
    for name, folder, images in (("ICDAR 2015", "icdar2015", 3), ("plates", "plates", 2)):
        precision, recall, hmean, correct, total = (float(value) for value in printed[name][1:])
        figures = json.loads((drive / "outputs" / folder / "summary.json").read_text())["evaluation"]
        assert total == figures["images"] == images, name
        assert correct == figures["images_all_correct"] <= total
        for key, value in (("precision", precision), ("recall", recall), ("hmean", hmean)):
            assert 0.0 <= value <= 1.0 and value == pytest.approx(figures[key], abs=5e-4), (name, key)
        expected_hmean = 2 * figures["precision"] * figures["recall"] / max(figures["precision"] + figures["recall"], 1e-12)
        assert figures["hmean"] == pytest.approx(expected_hmean, abs=1e-6), name
    # Everything the notebook wrote went to its work folder and "Drive"; the project is untouched.
    assert repo_files() == before
