"""TrainStepRunner: the same steps as keras' train_on_batch, without a host wait per step."""
from conftest import requires_jax, run_under_jax

# Runs in this process (TensorFlow) and, as a script, under KERAS_BACKEND=jax.
CHECK = '''
import numpy as np
import keras

import losses
import model as east_model
from train_step import TrainStepRunner


def tiny_east():
    """A small conv net with EAST's head and BatchNorm (non-trainable state): fast to compile."""
    layers = keras.layers
    inputs = keras.Input((64, 64, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.Conv2D(8, 3, strides=2, padding="same", kernel_regularizer=keras.regularizers.L2(1e-5))(x)
    score_map, geo_map = east_model.RboxOutputs(64)(layers.Conv2D(6, 1)(x))
    return keras.Model(inputs, [score_map, geo_map])


def compiled_pair():
    keras.utils.set_random_seed(3)
    networks = [tiny_east() for _ in range(2)]
    networks[1].set_weights(networks[0].get_weights())
    trainers = [east_model.training_model(network) for network in networks]
    for trainer in trainers:
        trainer.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.east_loss,
                        metrics=[losses.score_loss, losses.geo_loss])
    return networks, trainers


def batches(count):
    rng = np.random.default_rng(0)
    for _ in range(count):
        images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
        targets = np.zeros((2, 16, 16, 7), np.float32)
        targets[:, 4:12, 4:12, 0] = 1.0
        targets[..., 1:5] = rng.uniform(2, 20, (2, 16, 16, 4))
        targets[..., 5] = rng.uniform(-0.5, 0.5, (2, 16, 16))
        targets[..., 6] = 1.0
        yield images, targets


def check():
    (reference_net, runner_net), (reference, trained) = compiled_pair()
    initial_weights = runner_net.get_weights()
    runner = TrainStepRunner(trained)
    reference_logs, runner_logs = [], []
    for index, (images, targets) in enumerate(batches(4)):
        reference_logs.append(reference.train_on_batch(images, targets, return_dict=True))
        runner_logs.append(TrainStepRunner.to_floats(runner.run(images, targets)))
        if index == 1:
            runner.sync()  # a checkpoint in the middle of a run; the steps go on after it
    runner.sync()
    for step, (expected, got) in enumerate(zip(reference_logs, runner_logs), start=1):
        for key in ("loss", "score_loss", "geo_loss"):
            assert abs(got[key] - expected[key]) <= 1e-5 * abs(expected[key]), (step, key, got, expected)
    assert runner_logs[3]["loss"] != runner_logs[0]["loss"]
    assert int(keras.ops.convert_to_numpy(trained.optimizer.iterations)) == 4
    for expected, got in zip(reference_net.get_weights(), runner_net.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    moved = [not np.allclose(before, after) for before, after in
             zip(initial_weights, runner_net.get_weights())]
    assert sum(moved) > len(moved) // 2, "sync() did not write the trained weights back"
    return runner_logs


if __name__ == "__main__":
    check()
    print("ok")
'''


def test_runner_matches_train_on_batch_step_for_step():
    namespace = {"__name__": "train_step_check"}
    exec(compile(CHECK, "train_step_check", "exec"), namespace)
    logs = namespace["check"]()
    assert len(logs) == 4


@requires_jax
def test_runner_matches_train_on_batch_under_jax():
    assert "ok" in run_under_jax(CHECK, timeout=600)


def test_metrics_are_built_before_the_first_step_so_it_is_traced_once():
    """train._build_metrics creates the compiled metrics' variables eagerly. Left to the first
    compiled step, they are created inside its trace, and TensorFlow then traces the step twice."""
    import tensorflow as tf

    import train
    from train_step import TrainStepRunner

    namespace = {"__name__": "train_step_check"}
    exec(compile(CHECK, "train_step_check", "exec"), namespace)
    _, (built, lazy) = namespace["compiled_pair"]()
    for trainer in (built, lazy):
        trainer.optimizer.build(trainer.trainable_variables)  # as train.prepare_training does
    train._build_metrics(built, 64)
    images, targets = next(namespace["batches"](1))
    created = {"built": [], "lazy": []}
    for run, trainer in (("built", built), ("lazy", lazy)):
        def record(next_creator, run=run, **kwargs):
            created[run].append(kwargs.get("name"))
            return next_creator(**kwargs)
        with tf.variable_creator_scope(record):
            TrainStepRunner(trainer).run(images, targets)
    assert created["lazy"], "without _build_metrics the first step creates the metric variables"
    assert created["built"] == []


def test_as_backend_arrays_wraps_aligned_batches_and_copies_the_rest():
    """Leased batches (64-byte aligned, as in the stream's blocks) reach TF without a copy; a
    misaligned array, which TF's kernels cannot read in place, is copied instead of aborting."""
    import numpy as np
    import tensorflow as tf

    from train_step import as_backend_arrays

    raw = np.zeros(4096, np.uint8)
    start = -raw.ctypes.data % 64
    images = raw[start:start + 2 * 8 * 8 * 3].reshape(2, 8, 8, 3)
    targets = raw[start + 448:start + 448 + 2 * 2 * 2 * 7 * 4].view(np.float32).reshape(2, 2, 2, 7)
    misaligned = raw[start + 1:start + 1 + images.size].reshape(images.shape)
    misaligned[0, 0, 0, 0] = 9
    wrapped_images, wrapped_targets = as_backend_arrays(images, targets)
    copied, _ = as_backend_arrays(misaligned, targets)
    assert isinstance(wrapped_images, tf.Tensor) and wrapped_images.dtype == tf.uint8
    images[0, 0, 0, 0], targets[1, 1, 1, 6] = 200, 0.5
    assert int(wrapped_images[0, 0, 0, 0]) == 200 and float(wrapped_targets[1, 1, 1, 6]) == 0.5  # shared
    misaligned[0, 0, 0, 1] = 7
    assert int(copied[0, 0, 0, 1]) == 0 and int(tf.reduce_sum(tf.cast(copied, tf.int32))) == 9
