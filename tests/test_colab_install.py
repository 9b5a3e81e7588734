"""The notebook's pip install resolves over the TensorFlow that Colab ships (pip's resolver, metadata only).

Colab keeps its own GPU TensorFlow and the notebook installs the rest of requirements.txt over it.
TensorFlow's wheels bound numpy, protobuf and keras, so a pin that one release rejects would
replace Colab's numpy/protobuf and break ``import tensorflow``. Colab's exact TensorFlow version
for a given month is not published in a machine-readable place, so this covers the last three
minor releases (2.19, 2.20, 2.21) for Colab's Python (3.12, manylinux x86_64). Nothing is
installed: ``pip install --dry-run`` reads the wheels' metadata (PEP 658) from the package index.
"""
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "notebooks" / "east_colab.ipynb"
COLAB_TENSORFLOWS = ("2.19.1", "2.20.0", "2.21.0")
TARGET = ["--python-version", "3.12", "--only-binary=:all:", "--platform", "manylinux_2_17_x86_64",
          "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_27_x86_64",
          "--platform", "manylinux_2_28_x86_64"]


def notebook_install_lines(tensorflow_version: str) -> list[str]:
    """The requirement lines the notebook's install cell writes, run from the cell's own code."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(cell.source for cell in notebook.cells if "requirements.txt" in cell.source and "pip" in cell.source)
    start = cell.index("    overrides = ")
    end = cell.index('    Path("/content/requirements-colab-install.txt")')
    fake_importlib = types.SimpleNamespace(metadata=types.SimpleNamespace(version=lambda name: tensorflow_version))
    namespace = {"PROJECT_DIR": REPO_ROOT, "importlib": fake_importlib, "re": __import__("re")}
    exec(textwrap.dedent(cell[start:end]), namespace)  # noqa: S102 - the notebook's code, run as on Colab
    return namespace["requirements"]


def _dry_run_command(requirements: list[str], folder: Path, *extra: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    requirements_file = folder / "requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n")
    return [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
            str(folder / "report.json"), "--target", str(folder / "target"), *TARGET, *extra,
            "-r", str(requirements_file)]


def _dry_run(requirements: list[str], folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_dry_run_command(requirements, folder, *extra), capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def package_index(tmp_path_factory):
    """Skips the module when no package index answers (CI has PyPI)."""
    probe = _dry_run([f"tensorflow=={COLAB_TENSORFLOWS[-1]}"], tmp_path_factory.mktemp("probe"), "--no-deps")
    if probe.returncode != 0:
        pytest.skip(f"no package index reachable: pip could not find tensorflow=={COLAB_TENSORFLOWS[-1]} "
                    f"({probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode})")


def test_install_lines_keep_colab_tensorflow_and_drop_tensorflow_cpu():
    lines = notebook_install_lines("2.19.1")
    assert "tensorflow==2.19.1" in lines and not any(line.startswith("tensorflow-cpu") for line in lines)
    assert [line for line in lines if line.startswith("numpy")] == ["numpy>=1.26,<=2.4.6"]
    assert any(line.startswith("keras==") for line in lines)  # pinned where no TensorFlow fights it


@pytest.fixture(scope="module")
def resolutions(package_index, tmp_path_factory) -> dict:
    """pip's answer for each Colab TensorFlow, the three resolved at once (they wait on the index, not
    the CPU): {version: (returncode, stderr, report folder)}."""
    started = {}
    for version in COLAB_TENSORFLOWS:
        folder = tmp_path_factory.mktemp(f"colab-{version}")
        started[version] = (subprocess.Popen(_dry_run_command(notebook_install_lines(version), folder),
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), folder)
    answers = {}
    for version, (process, folder) in started.items():
        _, stderr = process.communicate(timeout=900)
        answers[version] = (process.returncode, stderr, folder)
    return answers


@pytest.mark.slow
@pytest.mark.parametrize("tensorflow_version", COLAB_TENSORFLOWS)
def test_notebook_install_resolves_over_colab_tensorflow(resolutions, tensorflow_version):
    returncode, stderr, folder = resolutions[tensorflow_version]
    assert returncode == 0, f"pip cannot install the notebook's set over tensorflow {tensorflow_version}:\n" \
                            + stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
    assert chosen["tensorflow"] == tensorflow_version
    assert "tensorflow-cpu" not in chosen and "keras" in chosen and "numpy" in chosen
