"""Run a compiled Keras train step batch after batch without waiting for the device each step.

``model.train_on_batch`` copies every loss back to the host after each step, so the host
cannot prepare step n+1 while the device computes step n; under JAX it also gathers and
writes back every variable (weights, BatchNorm statistics, Adam slots) each step. At batch
64 on one GPU that costs several percent of the step. ``TrainStepRunner`` calls the same
compiled function Keras builds for ``fit``/``train_on_batch`` (same loss, regularization,
optimizer and metric code) but:

* returns the step's logs as device values; reading them (``to_floats``) is the only wait;
* under JAX, keeps the training state as arrays between steps and writes it into the Keras
  variables only in ``sync()`` (before a checkpoint, an evaluation or the end of training).

Metrics are reset before every step, as ``train_on_batch`` does, so the logs are that one
batch's values.
"""
from __future__ import annotations

import numpy as np


class TrainStepRunner:
    """Drive ``trainer``'s compiled train step.

    Batches go in as ``(images, targets, None)``, the structure ``train_on_batch`` gives the
    same compiled function, so it is traced once.

    Args:
        trainer: a compiled keras.Model (``trainer.compile(...)`` done).
        strategy: a ``tf.distribute`` strategy whose scope built ``trainer``, or None. Under
            JAX the distribution is Keras' global one (``keras.distribution.set_distribution``,
            set before ``trainer`` was built); batches are laid out by it.

    ``run(images, targets)`` performs one optimizer step on one batch (numpy or device arrays,
    the global batch when a strategy splits it) and returns ``{name: device scalar}``. The step
    may read numpy inputs in place (``as_backend_arrays``; JAX on the CPU): they must not change
    until ``wait(logs)`` has returned.
    Under JAX the Keras variables are stale (and must not be read) between the first
    ``run`` after a ``sync()`` and the next ``sync()``.
    """

    def __init__(self, trainer, strategy=None):
        import keras

        self.trainer = trainer
        self.strategy = strategy
        self.backend = keras.backend.backend()
        self._state = None  # JAX only: (trainable, non_trainable, optimizer) value lists
        self._fresh_metrics = None

    def run(self, images, targets) -> dict:
        """One train step on (images (B, H, W, 3), targets (B, H/4, W/4, 7)); logs stay on device."""
        trainer = self.trainer
        if trainer.train_function is None:
            # The first step goes through Keras' own entry point, which builds the loss and
            # metric trackers and compiles the step (under a strategy: in cross-replica
            # context, with an evaluation step that updates no weight).
            if self.strategy is not None:
                trainer.test_on_batch(images, targets)
            else:
                return trainer.train_on_batch(images, targets, return_dict=True)
        trainer.make_train_function()
        if self.backend == "jax":
            return self._run_jax(images, targets)
        trainer.reset_metrics()
        if self.strategy is not None:
            images, targets = distribute_batch(self.strategy, images, targets)
        elif isinstance(images, np.ndarray):
            images, targets = as_backend_arrays(images, targets)  # no copy of a leased batch
        return trainer.train_function(iter([(images, targets, None)]))

    def _run_jax(self, images, targets) -> dict:
        import jax
        import keras

        trainer = self.trainer
        if self._state is None:
            trainer.reset_metrics()
            self._fresh_metrics = [np.asarray(variable.value) for variable in trainer.metrics_variables]
            self._state = ([variable.value for variable in trainer.trainable_variables],
                           [variable.value for variable in trainer.non_trainable_variables],
                           [variable.value for variable in trainer.optimizer.variables])
        # The compiled step donates its state argument: the metric totals go in as fresh host
        # zeros every step (that is the per-step reset), the rest is the previous output.
        metrics = list(self._fresh_metrics)
        distribution = keras.distribution.distribution()
        if distribution is not None:
            # Host zeros reached the step as NamedSharding at step 1 and GSPMDSharding at step 2,
            # so jit compiled the step twice; placed with their variables' sharding it compiles once.
            # (On one device, placing them makes it compile three times: they stay host arrays.)
            metrics = [jax.device_put(zeros, variable.value.sharding)
                       for zeros, variable in zip(metrics, trainer.metrics_variables)]
            # keras.distribution.DataParallel: each device gets its slice of the batch's first axis.
            images, targets = (keras.distribution.distribute_tensor(array, distribution.get_data_layout(array.shape))
                               for array in (images, targets))
        logs, (trainable, non_trainable, optimizer_values, _) = trainer.train_function(
            (*self._state, metrics), iter([(images, targets, None)]))
        self._state = (trainable, non_trainable, optimizer_values)
        return logs

    def sync(self) -> None:
        """Write the training state into the Keras variables (no-op outside JAX)."""
        if self._state is None:
            return
        trainer = self.trainer
        trainable, non_trainable, optimizer_values = self._state
        for variables, values in ((trainer.trainable_variables, trainable),
                                  (trainer.non_trainable_variables, non_trainable),
                                  (trainer.optimizer.variables, optimizer_values)):
            for variable, value in zip(variables, values):
                variable.assign(value)
        # The variables now share these buffers; the next step donates them, so it starts
        # again from the variables' values.
        self._state = None

    def wait(self, logs: dict) -> None:
        """Returns once the step that gave ``logs`` (and every step before it) has finished, its
        input arrays included: a batch read without a copy may be rewritten from then on.

        A step's logs are ready only when the whole step is: under JAX the step is one compiled
        executable, whose outputs become ready together when it ends (and each step takes the
        previous one's state); under TensorFlow a function call returns only after its ops ran on
        the CPU (synchronous execution, TF's default), and an accelerator has copied the host
        inputs before the first op that produces the logs.
        """
        self.to_floats(logs)

    @staticmethod
    def to_floats(logs: dict) -> dict:
        """``{name: float}`` from a step's logs; waits for that step to finish."""
        return {key: float(np.asarray(value)) for key, value in logs.items()}


def distribute_batch(strategy, images, targets):
    """Split this machine's batch across ``strategy``'s local replicas (equal slices of the first axis).

    With one machine that is the global batch; under MultiWorkerMirroredStrategy it is this
    machine's slice of it (``distribute.Placement.slots``), and machine i's replicas hold the
    global replica ids i * local_count ... (i + 1) * local_count - 1.
    """
    local_count = len(strategy.extended.worker_devices)
    if len(images) % local_count:
        raise ValueError(f"batch_size {len(images)} (per machine) is not divisible by the {local_count} devices")
    per_replica = len(images) // local_count

    def slice_for(context):
        start = (context.replica_id_in_sync_group % local_count) * per_replica
        return images[start:start + per_replica], targets[start:start + per_replica]

    return strategy.experimental_distribute_values_from_function(slice_for)


def as_backend_arrays(images: np.ndarray, targets: np.ndarray):
    """The batch as the backend's own arrays, sharing the numpy arrays' memory where the backend can.

    TensorFlow's ``convert_to_tensor`` copies a numpy array (36 ms for the 40 MB of a batch of
    32 at 512 px on a 2-core CPU); a 64-byte-aligned, C-contiguous, writable array (as
    ``BatchStream.take`` lends them) is wrapped through DLPack instead (TF needs that alignment
    and wrapping a misaligned array aborts the process at its first op). Under JAX,
    ``device_put`` of a numpy array on the CPU already shares it; on an accelerator both copy to
    the device. So the arrays must not change until the step reading the result is over
    (``TrainStepRunner.wait``).

    Args:
        images: uint8 (B, S, S, 3); targets: float32 (B, S/4, S/4, 7).

    Returns:
        (images, targets) as tf.Tensor or jax.Array, same shapes and dtypes.
    """
    import keras

    if keras.backend.backend() == "jax":
        import jax
        return jax.device_put(images), jax.device_put(targets)
    import tensorflow as tf

    return tuple(tf.experimental.dlpack.from_dlpack(array.__dlpack__()) if _wrappable(array)
                 else tf.convert_to_tensor(array) for array in (images, targets))


# TensorFlow's CPU kernels assume EIGEN_MAX_ALIGN_BYTES alignment of every buffer they read.
_TF_ALIGNMENT = 64


def _wrappable(array) -> bool:
    return (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable
            and array.ctypes.data % _TF_ALIGNMENT == 0)
