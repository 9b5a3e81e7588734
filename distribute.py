"""Where a training process sits among several devices and machines, and which slice of the data it builds.

One machine, several devices: ``tf.distribute.MirroredStrategy`` (TensorFlow backend) or
``keras.distribution.DataParallel`` (JAX backend) split each global batch across the devices.

Several machines (TensorFlow backend): every machine runs the same ``train.py`` command with its
own ``--task_index`` (or its own ``TF_CONFIG``) and ``tf.distribute.MultiWorkerMirroredStrategy``
all-reduces the gradients. Machine ``i`` of ``n`` builds slots ``[i * B/n, (i + 1) * B/n)`` of
every global batch of ``B`` (``Placement.slots``), so the global batches are the ones a single
machine would build. Only the chief (task 0) writes into ``--checkpoint_path``; the others write
their copy of each save into a scratch folder that is thrown away, because a save may run
collective operations every worker must join (TensorFlow's documented multi-worker pattern).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

log = logging.getLogger(__name__)

TF_CONFIG_VARIABLE = "TF_CONFIG"


@dataclasses.dataclass(frozen=True)
class Placement:
    """This process's place in a (possibly multi-machine) run.

    worker_index: 0..worker_count - 1, the order of the global batch's slices (the chief is 0).
    worker_count: machines in the run (1 without a cluster).
    """

    worker_index: int = 0
    worker_count: int = 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes checkpoints, train_log.csv and TensorBoard."""
        return self.worker_index == 0

    def slots(self, batch_size: int) -> tuple[int, int] | None:
        """(start, stop) of this machine's slots in a global batch of ``batch_size``; None = all.

        Raises:
            ValueError: batch_size is not a multiple of worker_count.
        """
        if self.worker_count == 1:
            return None
        if batch_size % self.worker_count:
            raise ValueError(f"batch_size {batch_size} must be a multiple of the {self.worker_count} workers")
        per_worker = batch_size // self.worker_count
        return self.worker_index * per_worker, (self.worker_index + 1) * per_worker


def tf_config_from_hosts(worker_hosts: str, task_index: int) -> dict:
    """The ``TF_CONFIG`` for ``--worker_hosts=h1:port,h2:port --task_index=N``.

    Args:
        worker_hosts: comma-separated host:port of every machine, the same list everywhere; the
            first one is the chief.
        task_index: this machine's position in that list.

    Returns:
        {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": task_index}}

    Raises:
        ValueError: an entry is not host:port, or task_index is outside the list.
    """
    hosts = [host.strip() for host in worker_hosts.split(",") if host.strip()]
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"worker_hosts entries must be host:port, got {host!r} in {worker_hosts!r}")
    if not 0 <= task_index < len(hosts):
        raise ValueError(f"task_index must be in 0..{len(hosts) - 1} for {len(hosts)} worker_hosts, got {task_index}")
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": int(task_index)}}


def cluster_from_environment() -> dict | None:
    """The parsed ``TF_CONFIG`` when it names more than one task, else None.

    Raises:
        ValueError: TF_CONFIG is not valid JSON with cluster and task.
    """
    text = os.environ.get(TF_CONFIG_VARIABLE, "").strip()
    if not text:
        return None
    try:
        tf_config = json.loads(text)
        tasks = sum(len(hosts) for hosts in tf_config["cluster"].values())
        if not {"type", "index"} <= set(tf_config["task"]):
            raise KeyError("task needs 'type' and 'index'")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{TF_CONFIG_VARIABLE} must be JSON with 'cluster' and 'task' "
                         f"({type(error).__name__}: {error}), got {text[:200]!r}") from None
    return tf_config if tasks > 1 else None


def placement_of(tf_config: dict | None) -> Placement:
    """Placement for a parsed TF_CONFIG: the chief (if the cluster has one) is 0, then the workers
    in order (MultiWorkerMirroredStrategy numbers the replicas the same way)."""
    if tf_config is None:
        return Placement()
    cluster, task = tf_config["cluster"], tf_config["task"]
    has_chief = bool(cluster.get("chief"))
    count = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if task["type"] == "chief":
        return Placement(0, count)
    if task["type"] != "worker":
        raise ValueError(f"{TF_CONFIG_VARIABLE} task type must be 'chief' or 'worker', got {task['type']!r}")
    return Placement(int(task["index"]) + int(has_chief), count)


def this_placement(worker_hosts: str = "", task_index: int = 0) -> Placement:
    """This machine's Placement from the flags, else TF_CONFIG, else one machine (no strategy built).

    Raises:
        ValueError: bad worker_hosts / task_index or TF_CONFIG.
    """
    if worker_hosts:
        return placement_of(tf_config_from_hosts(worker_hosts, task_index))
    return placement_of(cluster_from_environment())


def multi_worker_strategy(worker_hosts: str = "", task_index: int = 0):
    """(``tf.distribute.MultiWorkerMirroredStrategy``, Placement), or (None, Placement()) for one machine.

    ``worker_hosts`` (when given) is written into ``TF_CONFIG`` for TensorFlow, which reads it
    there; otherwise an existing multi-task ``TF_CONFIG`` is used. Must run before TensorFlow
    executes any operation in this process (the strategy configures the runtime's collectives).
    Each machine uses all its visible GPUs (choose them with ``CUDA_VISIBLE_DEVICES``), or its CPU.
    """
    if worker_hosts:
        tf_config = tf_config_from_hosts(worker_hosts, task_index)
        if len(tf_config["cluster"]["worker"]) == 1:
            return None, Placement()
        os.environ[TF_CONFIG_VARIABLE] = json.dumps(tf_config)
    else:
        tf_config = cluster_from_environment()
        if tf_config is None:
            return None, Placement()
    import tensorflow as tf

    placement = placement_of(tf_config)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    fix_keras_multi_worker_logs()
    log.info("worker %d of %d, %d replicas in all", placement.worker_index, placement.worker_count,
             strategy.num_replicas_in_sync)
    return strategy, placement


def local_replica_count(strategy) -> int:
    """Replicas (devices) of ``strategy`` on this machine."""
    return len(strategy.extended.worker_devices)


def fix_keras_multi_worker_logs() -> None:
    """Let Keras' compiled steps return scalar logs under MultiWorkerMirroredStrategy.

    Keras 3 (checked on 3.15.1) reduces every per-replica log of a multi-worker step with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails for scalars such as the loss
    ("Invalid reduction dimension 0 for input with 0 dimensions"). This wraps Keras'
    ``reduce_per_replica`` so that under that strategy scalars are averaged over the replicas
    (``axis=None``, what MirroredStrategy's path computes); everything else goes to Keras as before.
    Idempotent.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "_east_multi_worker_fix", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def reduce(value):
            if value.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica._east_multi_worker_fix = True
    keras_trainer.reduce_per_replica = reduce_per_replica


def jax_data_parallel(device_list: str = "", batch_size: int | None = None):
    """``keras.distribution.DataParallel`` over the JAX devices, or None where there is one.

    Args:
        device_list: "" = every device of JAX's default platform (all GPUs, else the CPU
            devices); "0,1" = gpu:0 and gpu:1; Keras device names such as "cpu:0,cpu:1" as given.

    Under DataParallel the step is one XLA program over all devices, the batch split along its
    first axis and the variables replicated; BatchNorm's batch statistics are reduced over the
    whole global batch, so the arithmetic is a one-device step's, partitioned. One machine only
    (several JAX processes would need ``jax.distributed.initialize`` and per-process data).
    """
    import keras

    if device_list:
        devices = [item.strip().lstrip("/") if ":" in item else f"gpu:{int(item)}"
                   for item in device_list.split(",") if item.strip()]
    else:
        devices = keras.distribution.list_devices()
    if len(devices) <= 1:
        return None
    if batch_size is not None and batch_size % len(devices):
        raise ValueError(f"batch_size {batch_size} is not divisible by the {len(devices)} devices {devices}")
    return keras.distribution.DataParallel(devices=devices)
