"""MirroredStrategy over two logical CPUs splits each batch across the replicas.

BatchNorm is frozen here (inference statistics in training too): with it live, each replica
normalizes with the statistics of its own half batch, so a replica's outputs honestly differ from
one device's and no tolerance would be meaningful. The dice term is computed per replica too,
so what must hold is: the two-device loss of step 1 is the mean of the one-device loss function
applied to each half of the one-device batch, and differs from the loss of the whole batch.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_tiny_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import losses, train

batch_norm_call = keras.layers.BatchNormalization.call
def frozen_call(self, inputs, training=None, mask=None):
    return batch_norm_call(self, inputs, training=False, mask=mask)
keras.layers.BatchNormalization.call = frozen_call

east_loss = losses.east_loss
captured = []
def recording_loss(y_true, y_pred):
    def keep(t, p):
        captured.append((t.numpy(), p.numpy()))
        return np.float32(0)
    tf.py_function(keep, [y_true, y_pred], tf.float32)
    return east_loss(y_true, y_pred)
losses.east_loss = recording_loss

def run(name, gpu_list):
    config = train.TrainConfig(input_size=64, batch_size=2, nb_workers=0, backbone="tiny",
                               backbone_weights="none", log_steps=1, progress=False, max_steps=1,
                               save_checkpoint_steps=1, training_data_path=sys.argv[1],
                               checkpoint_path=sys.argv[2] + "/" + name, gpu_list=gpu_list, seed=3)
    captured.clear()
    loss = train.run_training(config)["loss"]
    # Under a strategy the first step is preceded by an evaluation step on the whole batch
    # (train_step.TrainStepRunner compiles through it); the training calls are the batch-1 ones.
    return loss, sorted(len(t) for t, _ in captured), [(t, p) for t, p in captured if len(t) == 1]

assert train.make_strategy("/cpu:0,/cpu:1").num_replicas_in_sync == 2
one_loss, one_sizes, _ = run("one", "")
(targets, predictions), = captured
two_loss, two_sizes, two_captured = run("two", "/cpu:0,/cpu:1")
def loss_of(part):
    return float(east_loss(targets[part], predictions[part]))
print(json.dumps({
    "one": {"loss": one_loss, "batch_sizes": one_sizes, "whole": loss_of(slice(None))},
    "two": {"loss": two_loss, "batch_sizes": two_sizes, "replica_calls": len(two_captured)},
    "halves_mean": (loss_of(slice(0, 1)) + loss_of(slice(1, 2))) / 2,
    "halves_targets_match": all(any(np.array_equal(t, targets[i:i + 1]) for t, _ in two_captured) for i in (0, 1)),
}))
"""


@pytest.mark.slow
def test_two_logical_devices_split_the_batch(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(tmp_path)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = figures["one"], figures["two"]
    assert one["batch_sizes"] == [2], "one device: one loss call on the batch of 2"
    assert two["batch_sizes"].count(1) == 2, f"each replica sees half of the batch of 2: {two['batch_sizes']}"
    assert two["replica_calls"] == 2 and figures["halves_targets_match"], "the two halves are the one-device batch"
    # The logged loss adds the L2 kernel regularization (model.py), the same on both runs at step 1.
    regularization = one["loss"] - one["whole"]
    assert regularization > 0
    tolerance = 1e-5
    assert two["loss"] == pytest.approx(figures["halves_mean"] + regularization, rel=tolerance)
    # The comparison can tell a split batch from a whole one: the loss is mostly per-pixel means,
    # so only the dice term differs (measured: 2.8e-5 relative, 8.6e-6 of 0.311), beyond the tolerance.
    assert abs(figures["halves_mean"] - one["whole"]) > 2 * tolerance * abs(one["whole"])
