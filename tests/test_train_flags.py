"""What train.py's flags promise: the README's flag tables are the CLIs' defaults; --mixed_precision,
--bn_momentum and --pretrained_model_path do what they say."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import checkpoints
import model as east_model
import train
from conftest import TINY, write_tiny_dataset
from test_train import _log_rows

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- README flag tables


def readme_flag_table(script: str) -> dict[str, str]:
    """flag name -> default cell of README.md's "## <script> flags" table (backticks removed)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {script} flags", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--(\w+)` \| `([^`]*)` \|", section, flags=re.MULTILINE)
    assert rows, f"no flag table under '## {script} flags'"
    return dict(rows)


def cli_flag_defaults(script: str) -> dict[str, str | None]:
    """flag name -> default as ``python <script> --helpshort`` prints it (None: no default)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, script, "--helpshort"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    text = result.stdout + result.stderr
    own = text.split(f"\n{script}:\n", 1)[1]
    defaults: dict[str, str | None] = {}
    name = None
    for line in own.splitlines():
        match = re.match(r"^  --(?:\[no\])?(\w+):", line)
        if match:
            name = match.group(1)
            defaults[name] = None
        elif name and (default := re.match(r"^\s+\(default: '(.*)'\)$", line)):
            defaults[name] = default.group(1)
        elif line and not line.startswith(" "):
            break
    return defaults


def _same_default(readme: str, cli: str | None) -> bool:
    if readme == "(none)":
        return cli in (None, "")
    if cli is None:
        return False
    try:
        return float(readme) == float(cli)
    except ValueError:
        return readme == cli


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_readme_flag_table_matches_cli_defaults(script):
    documented, defined = readme_flag_table(script), cli_flag_defaults(script)
    assert sorted(documented) == sorted(defined), f"README's {script} table and the CLI list different flags"
    drift = {name: (documented[name], defined[name]) for name in documented
             if not _same_default(documented[name], defined[name])}
    assert not drift, f"README default vs {script} default: {drift}"


def test_readme_table_parser_sees_a_drift():
    assert not _same_default("0.0001", "0.001") and not _same_default("(none)", "x")
    assert _same_default("0", "0.0") and _same_default("true", "true") and _same_default("(none)", None)


# --------------------------------------------------------------------------- run options


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("flags") / "train")


def _config(data: Path, folder: Path, **overrides) -> train.TrainConfig:
    return train.TrainConfig(**{**TINY, "training_data_path": str(data), "checkpoint_path": str(folder),
                                "max_steps": 1, "save_checkpoint_steps": 1, **overrides})


def _bn_moving_means(folder: Path) -> dict[str, np.ndarray]:
    import keras

    network, _ = checkpoints.load_model_for_inference(str(folder))
    return {layer.name: np.asarray(layer.moving_mean) for layer in network.layers
            if isinstance(layer, keras.layers.BatchNormalization)}


@pytest.mark.slow
def test_bn_momentum_sets_every_batchnorm(tiny_data, tmp_path):
    """After one step from zero moving means, moving_mean = (1 - momentum) * batch mean; the batch
    and the forward pass are the same for both runs, so the means differ by (1-0.5)/(1-0.9) = 5."""
    for momentum in (0.5, 0.9):
        train.run_training(_config(tiny_data, tmp_path / f"m{momentum}", bn_momentum=momentum))
    half, ninety = _bn_moving_means(tmp_path / "m0.5"), _bn_moving_means(tmp_path / "m0.9")
    backbone_layers = {f"tiny_stride{stride}_bn" for stride, _ in east_model.TINY_LEVELS}
    merge_layers = {f"merge{level}_{kind}_bn" for level in range(3) for kind in ("1x1", "3x3")} | {"final_3x3_bn"}
    assert half.keys() == ninety.keys() == backbone_layers | merge_layers
    for name in half:
        np.testing.assert_allclose(half[name], 5.0 * ninety[name], rtol=2e-3, atol=1e-6, err_msg=name)
    assert max(np.abs(mean).max() for mean in half.values()) > 0.01


@pytest.mark.slow
def test_mixed_precision_trains_in_bfloat16_on_cpu(tiny_trained_run, tmp_path):
    import keras
    from conftest import shared_run_config

    policies = []
    config = shared_run_config(tiny_trained_run["data"], tmp_path / "mixed", mixed_precision=True, max_steps=2,
                               save_checkpoint_steps=2)
    result = train.run_training(config, on_step=lambda step: policies.append(keras.mixed_precision.global_policy().name))
    assert policies == ["mixed_bfloat16"] * 2
    assert keras.mixed_precision.global_policy().name == "float32", "the policy is restored afterwards"
    # The shared run is the same run in float32: its step-2 loss is the reference.
    float32_loss = float(_log_rows(tiny_trained_run["run"])[2]["loss"])
    assert np.isfinite(result["loss"])
    # Same batches and weights: bfloat16 arithmetic moves the loss a little, not a lot.
    assert result["loss"] != float32_loss
    assert result["loss"] == pytest.approx(float32_loss, rel=0.05)
    network, _ = checkpoints.load_model_for_inference(str(tmp_path / "mixed"))
    assert {weight.dtype for weight in network.weights} == {"float32"}, "weights stay float32"


@pytest.mark.slow
def test_fine_tuning_loads_weights_and_starts_a_fresh_optimizer(tiny_trained_run, tmp_path):
    import keras

    base, tiny_data = tiny_trained_run["run"], tiny_trained_run["data"]
    # A learning rate so small that step 1 cannot move a weight: ckpt-1's weights are what was loaded.
    train.run_training(_config(tiny_data, tmp_path / "tune", pretrained_model_path=str(base),
                               init_learning_rate=1e-30))
    tuned, _ = checkpoints.load_model_for_inference(str(tmp_path / "tune"))
    based, _ = checkpoints.load_model_for_inference(str(base))
    keras.utils.set_random_seed(TINY["seed"])
    fresh = east_model.build_east(64, backbone="tiny", backbone_weights="none")
    moved = 0
    for tuned_weight, base_weight, fresh_weight in zip(tuned.trainable_weights, based.trainable_weights,
                                                      fresh.trainable_weights, strict=True):
        np.testing.assert_allclose(np.asarray(tuned_weight), np.asarray(base_weight), rtol=1e-6, atol=1e-12,
                                   err_msg=tuned_weight.path)
        moved += not np.allclose(np.asarray(base_weight), np.asarray(fresh_weight))
    assert moved > 10, "the base run's weights must differ from a fresh network's for this test to mean anything"

    state = checkpoints.read_state(tmp_path / "tune" / "ckpt-1")
    assert state["step"] == 1
    with np.load(tmp_path / "tune" / "ckpt-1" / checkpoints.OPTIMIZER_FILE) as archive:
        values = dict(zip(state["optimizer_variables"], (archive[f"arr_{i}"] for i in range(len(archive.files)))))
    assert int(values[state["optimizer_variables"][0]]) == 1, "the step counter restarts: 0 -> 1, not base's 60 -> 61"
    # Adam from zero moments after one step: m = (1 - b1) g and v = (1 - b2) g^2, so
    # v (1 - b1)^2 = m^2 (1 - b2) on every element; moments carried over from the base run break it.
    beta_1, beta_2 = 0.9, 0.999
    pairs = [(path, path[:-len("momentum")] + "velocity") for path in values if path.endswith("_momentum")]
    assert len(pairs) > 30
    for momentum_path, velocity_path in pairs:
        momentum, velocity = values[momentum_path], values[velocity_path]
        np.testing.assert_allclose(velocity * (1 - beta_1) ** 2, momentum ** 2 * (1 - beta_2),
                                   rtol=1e-3, atol=1e-20, err_msg=momentum_path)


# With the variable set the setting is left alone ("0": TensorFlow's own, which reads the variable).
@pytest.mark.parametrize("environment, expected", [({}, "1"), ({"TF_NUM_INTEROP_THREADS": "2"}, "0")])
def test_training_on_the_cpu_runs_one_inter_op_thread_unless_the_environment_says(environment, expected):
    # A fresh process: TensorFlow fixes the setting when it first runs, as train.run_training's start is.
    script = ("import tensorflow as tf, train\n"
              "train._one_inter_op_thread(tf)\n"
              "print(tf.config.threading.get_inter_op_parallelism_threads())")
    env = {key: value for key, value in os.environ.items() if key != "TF_NUM_INTEROP_THREADS"} | environment
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected
