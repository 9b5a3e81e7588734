"""Exact resume under KERAS_BACKEND=jax (jax[cpu] is in requirements-dev.txt, so CI runs this).

Model build + forward, the losses and one train step under JAX are tested next to their
TensorFlow versions: test_model.py::test_builds_under_jax_without_tensorflow,
test_losses.py::test_same_values_under_jax, test_train_step.py::test_runner_matches_train_on_batch_under_jax.
"""
import json

import pytest

from conftest import requires_jax, run_under_jax

RESUME_SCRIPT = """
import csv, json, sys
from pathlib import Path
import keras, numpy as np
import jax
# The three runs build the same network: XLA's persistent cache compiles its train step once.
jax.config.update("jax_compilation_cache_dir", sys.argv[1] + "/xla_cache")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
import checkpoints, train
sys.path.insert(0, "tests")
from conftest import TINY, write_tiny_dataset
assert keras.backend.backend() == "jax"
root = Path(sys.argv[1])
data = write_tiny_dataset(root / "data")

class Stop(Exception):
    pass

def stop_after_3(step):
    if step == 3:
        raise Stop()

def config(name):
    return train.TrainConfig(**TINY, training_data_path=str(data), checkpoint_path=str(root / name),
                             max_steps=4, save_checkpoint_steps=2, init_learning_rate=1e-3, bn_momentum=0.9)

def rows(name):
    with open(root / name / "train_log.csv", newline="") as handle:
        return {row["step"]: [float(row[key]) for key in ("loss", "score_loss", "geo_loss", "lr")]
                for row in csv.DictReader(handle)}

train.run_training(config("straight"))
try:
    train.run_training(config("resumed"), on_step=stop_after_3)
except Stop:
    pass
interrupted = {"latest": (root / "resumed" / "latest").read_text().strip(), "rows": sorted(rows("resumed"))}
lines = []
train.run_training(config("resumed"), report=lines.append)
weights = [checkpoints.load_model_for_inference(str(root / name))[0].get_weights() for name in ("straight", "resumed")]
weights_match = all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(*weights, strict=True))
print(json.dumps({"interrupted": interrupted, "resumed": [line for line in lines if line.startswith("resumed from")],
                  "straight_rows": rows("straight"), "resumed_rows": rows("resumed"), "weights_match": weights_match}))
"""


@pytest.mark.slow
@requires_jax
def test_exact_resume_under_jax(tmp_path):
    script = RESUME_SCRIPT.replace("sys.argv[1]", repr(str(tmp_path)))
    result = json.loads(run_under_jax(script, timeout=900).strip().splitlines()[-1])
    assert result["interrupted"] == {"latest": "ckpt-2", "rows": ["1", "2", "3"]}
    assert result["resumed"] == ["resumed from step 2"]
    straight, resumed = result["straight_rows"], result["resumed_rows"]
    assert sorted(resumed) == ["1", "2", "3", "4"]
    for step in ("3", "4"):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-5), step
    assert result["weights_match"]

