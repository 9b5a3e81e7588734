"""Train EAST (RBOX) with EAST-tf2's flags; resumes exactly after the process dies.

    python train.py --training_data_path=./data/ICDAR2015/train_data \\
        --checkpoint_path=./east_resnet_50_rbox [--backbone_weights=imagenet|none|FILE]

Rerunning the same command with the same --checkpoint_path continues from the last
checkpoint ("resumed from step N"): weights, optimizer slots, the step counter (and so the
learning-rate schedule) and the data stream position are restored. --pretrained_model_path
starts a new run (fresh optimizer, step 0) from another run's weights, for fine-tuning.

Several GPUs: all visible GPUs (or --gpu_list=0,1) train one model with
``tf.distribute.MirroredStrategy`` (TensorFlow) or ``keras.distribution.DataParallel`` (JAX);
each step's --batch_size images are split across them.
Several machines (TensorFlow backend): the same command on each machine plus
``--worker_hosts=h1:port,h2:port --task_index=N`` (or ``TF_CONFIG``), a --checkpoint_path
folder every machine sees; ``tf.distribute.MultiWorkerMirroredStrategy`` trains, each machine
builds its slice of every global batch and only task 0 writes (see distribute.py).

The library entry point is ``run_training(TrainConfig(...))``; flags are defined only when
this file runs as a script.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import faulthandler
import io
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

import atomic_io
import network_io
import path_guard

log = logging.getLogger(__name__)

LOG_COLUMNS = ("step", "loss", "score_loss", "geo_loss", "lr", "images_per_sec")
GEOMETRIES = ("RBOX",)
# Train steps the host may start before the oldest of them has finished (each holds its batch).
STEPS_AHEAD = 2


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; field names and defaults are EAST-tf2's flags.

    Additions: annotation_format/strict/skip_unannotated (data loading), pretrained_model_path
    (fine-tune), seed, mixed_precision, max_to_keep, backbone, backbone_weights, gpu_list
    ("" = every visible GPU; "0,1" = those GPUs; full device names such as "/cpu:0,/cpu:1"
    are accepted too), log_steps (train_log.csv / TensorBoard / progress period), progress
    (show a tqdm bar), text_width_range (None: EAST-tf2's random_scale; (low, high): scale each
    text crop so one box is low..high * input_size wide, see augmentation.AugmentConfig),
    text_height_range (the same, for the box's height: plates of every aspect at one character size),
    allow_flag_change (resume with changed resume_flags.CHECKED flags),
    worker_hosts/task_index (several machines: "h1:port,h2:port" and this machine's index in it,
    see distribute.py; "" = one machine, or the cluster in TF_CONFIG),
    allow_empty (train on data without any box to learn from: background-only fine-tuning),
    rehearsal_data_path/rehearsal_share (a second folder, e.g. the synthetic scenes a base model learned
    from, mixed into a fine-tune as that share of the training images so the model keeps what it knew;
    "" = none, see data_preprocessor.rehearsal_subset),
    color_jitter (strength of a random brightness, contrast, saturation and colour cast of each crop,
    see augmentation.jitter_colors; 0 = none),
    degrade (probability that a crop is degraded as a poorer camera shows it, see
    augmentation.degrade_camera; 0 = never),
    eval_core_thresh (the --core_thresh eval.py and serve.py use with this run's checkpoints when not
    given one; recorded in each checkpoint beside the eval scale; 0 = off, EAST-tf2; not inherited from
    --pretrained_model_path).
    """

    input_size: int = 512
    batch_size: int = 8
    nb_workers: int = 4
    init_learning_rate: float = 1e-4
    lr_decay_rate: float = 0.94
    lr_decay_steps: int = 16250
    max_steps: int = 100000
    checkpoint_path: str = "./east_resnet_50_rbox"
    save_checkpoint_steps: int = 50
    training_data_path: str = "./data/ICDAR2015/train_data"
    max_image_large_side: int = 1280
    max_text_size: int = 800
    min_text_size: int = 10
    min_crop_side_ratio: float = 0.1
    geometry: str = "RBOX"
    suppress_warnings_and_error_messages: bool = True
    annotation_format: str = "auto"
    strict: bool = False
    skip_unannotated: bool = False
    pretrained_model_path: str = ""
    seed: int = 0
    mixed_precision: bool = False
    max_to_keep: int = 5
    backbone: str = "resnet50"
    backbone_weights: str = "imagenet"
    gpu_list: str = ""
    log_steps: int = 10
    bn_momentum: float = 0.0
    progress: bool = True
    text_width_range: tuple[float, float] | None = None
    text_height_range: tuple[float, float] | None = None
    allow_flag_change: bool = False
    worker_hosts: str = ""
    task_index: int = 0
    allow_empty: bool = False
    rehearsal_data_path: str = ""
    rehearsal_share: float = 0.5
    color_jitter: float = 0.0
    degrade: float = 0.0
    eval_core_thresh: float = 0.0

    def __post_init__(self):
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry: only RBOX is implemented, got {self.geometry!r}")
        for name in ("input_size", "batch_size", "max_steps", "save_checkpoint_steps", "lr_decay_steps",
                     "max_to_keep", "log_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.input_size % network_io.SIZE_MULTIPLE:
            raise ValueError(f"input_size must be a multiple of {network_io.SIZE_MULTIPLE}, got {self.input_size}")
        if self.nb_workers < 0:
            raise ValueError(f"nb_workers must be >= 0, got {self.nb_workers}")
        if not 0.0 <= self.bn_momentum < 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if not 0.0 <= self.rehearsal_share < 1.0:
            raise ValueError(f"rehearsal_share must be in [0, 1), got {self.rehearsal_share}")
        if not 0.0 <= self.eval_core_thresh <= 1.0:
            raise ValueError(f"eval_core_thresh must be in [0, 1], got {self.eval_core_thresh}")
        if self.init_learning_rate <= 0:
            raise ValueError(f"init_learning_rate must be positive, got {self.init_learning_rate}")
        from augmentation import check_pixel_augmentation, check_text_size_ranges
        check_text_size_ranges(self.text_width_range, self.text_height_range)
        check_pixel_augmentation(self.color_jitter, self.degrade)
        if self.worker_hosts:
            import distribute
            hosts = distribute.tf_config_from_hosts(self.worker_hosts, self.task_index)["cluster"]["worker"]
            distribute.Placement(self.task_index, len(hosts)).slots(self.batch_size)

    @property
    def model_config(self) -> dict:
        return {"input_size": self.input_size, "backbone": self.backbone}


def _tensorflow():
    """TensorFlow if the Keras backend is TensorFlow, else None (JAX runs need no TF)."""
    import keras
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf
    return tf


def make_strategy(gpu_list: str):
    """A ``tf.distribute.MirroredStrategy`` over the chosen devices, or None for one device.

    Args:
        gpu_list: "" = every visible GPU; "0,1" = GPUs 0 and 1; "/cpu:0,/cpu:1" = those
            devices (tests use logical CPU devices).

    For several machines replace this by ``tf.distribute.MultiWorkerMirroredStrategy()``
    with ``TF_CONFIG`` set on every worker (see the module docstring).
    """
    tf = _tensorflow()
    if tf is None:  # JAX: distribute.jax_data_parallel
        return None
    if gpu_list:
        devices = [item.strip() if "/" in item or ":" in item else f"/gpu:{int(item)}"
                   for item in gpu_list.split(",") if item.strip()]
    else:
        devices = [f"/gpu:{index}" for index in range(len(tf.config.list_logical_devices("GPU")))]
    if len(devices) <= 1:
        return None
    return tf.distribute.MirroredStrategy(devices)


def _set_determinism(seed: int, use_gpu: bool) -> None:
    import keras
    keras.utils.set_random_seed(seed)
    tf = _tensorflow()
    if tf is not None and not use_gpu:
        # Op determinism makes a resumed run repeat an uninterrupted one bit for bit on CPU.
        # On GPU it would refuse ResizeBilinearGrad (no deterministic kernel), so GPU runs
        # resume exactly in state but may differ in the last float bits.
        tf.config.experimental.enable_op_determinism()


def _one_inter_op_thread(tf) -> None:
    """Runs a step's independent ops one after another (each op still uses every core), unless the
    environment sets TF_NUM_INTEROP_THREADS.

    With several inter-op threads, TensorFlow on the CPU runs them concurrently, and the same
    MobileNetV2 steps on the same batches from the same weights differed in their last bits in 4 of
    8 processes despite op determinism (0 of 7 with one thread), so neither two runs of one seed nor a
    resumed run and an uninterrupted one were the same. It costs 11 % of the step on a 2-core CPU
    (bench/bench_inter_op.py; README "Same seed, same model").
    """
    if "TF_NUM_INTEROP_THREADS" in os.environ or tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process (train.py called as a library)
        log.warning("TensorFlow already runs with several inter-op threads in this process: "
                    "two runs of the same seed may differ in their last bits")


def _gpu_count() -> int:
    tf = _tensorflow()
    if tf is not None:
        return len(tf.config.list_physical_devices("GPU"))
    import jax
    return sum(device.platform == "gpu" for device in jax.devices())


@dataclasses.dataclass
class TrainingSetup:
    """What ``prepare_training`` hands to ``train_loop``: the built, compiled and restored run.

    samples: the training Samples (--training_data_path's, then the rehearsal ones); augment: their
    AugmentConfig; network: the inference model (``model.build_east``) whose weights are checkpointed;
    trainer: the compiled training model;
    schedule: the learning-rate schedule (step -> lr); strategy: a tf.distribute strategy or None;
    step: the steps already done (the restored checkpoint's, else 0); placement: this machine's
    distribute.Placement (its slice of each batch; whether it writes into checkpoint_path);
    eval_max_side_len: the eval max_side_len --training_data_path's samples and this augmentation
    imply (augmentation.implied_max_side_len; the rehearsal images are not the user's photos),
    recorded in every checkpoint for eval.py and serve.py.
    """

    config: TrainConfig
    samples: list
    augment: object
    network: object
    trainer: object
    schedule: object
    strategy: object
    step: int
    placement: object = None
    eval_max_side_len: int | None = None


def run_training(config: TrainConfig, report: Callable[[str], None] = log.info, *,
                 on_step: Callable[[int], None] | None = None) -> dict:
    """Train (or resume training) EAST as ``config`` says, holding the checkpoint folder's lock
    (run_lock.RunLock: a second run on the same folder is refused) from before any clean-up to
    the end, errors and Ctrl-C included. Arguments, result and errors: ``_run_training``, plus
    run_lock.RunLockError. Only the chief of a multi-machine run locks the shared folder: the other
    machines write nothing there. The checkpoint folder may not be, hold or lie inside
    the training data or the fine-tuning source (path_guard.PathOverlapError)."""
    import checkpoints
    import distribute
    import run_lock

    tf = _tensorflow()
    if tf is not None and _gpu_count() == 0:
        _one_inter_op_thread(tf)  # before anything runs TensorFlow: the setting is fixed from then on
    path_guard.check_outputs_apart({"--checkpoint_path": config.checkpoint_path},
                                   {"--training_data_path": config.training_data_path,
                                    "--rehearsal_data_path": config.rehearsal_data_path,
                                    "--pretrained_model_path": config.pretrained_model_path})
    checkpoints.check_training_folder(config.checkpoint_path, LOG_COLUMNS)
    if not distribute.this_placement(config.worker_hosts, config.task_index).is_chief:
        return _run_training(config, report, on_step=on_step)
    with run_lock.RunLock(config.checkpoint_path, report):
        return _run_training(config, report, on_step=on_step)


def _run_training(config: TrainConfig, report: Callable[[str], None] = log.info, *,
                  on_step: Callable[[int], None] | None = None) -> dict:
    """Train (or resume training) EAST as ``config`` says.

    Args:
        config: the run's settings.
        report: receives the lines a person should see (data summary, "resumed from step N",
            "checkpoint saved"); train.py passes ``print``.
        on_step: called with the step number after each step (and its checkpoint, if one is due)
            is done; tests use it to stop a run at a chosen point.

    Returns:
        dict: step (int, steps done), and the last logged loss, score_loss, geo_loss, lr.

    Raises:
        checkpoints.CheckpointError: checkpoint_path holds something else or an incompatible
            model; pretrained_model_path is unusable. Nothing is written in that case.
        data_preprocessor.DataError: the training data cannot be used.
        model.BackboneWeightsError: ImageNet weights unavailable (offline).
    """
    import keras

    import checkpoints

    previous_policy = keras.mixed_precision.global_policy()
    previous_distribution = keras.distribution.distribution()
    try:
        setup = prepare_training(config, report)
        with _output_folder(config, setup.placement) as folder, TrainLogger(config, setup.step, folder) as logger:
            result = train_loop(setup, logger, on_step)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        keras.distribution.set_distribution(previous_distribution)
    report(f"training stopped at step {result['step']}; checkpoint "
           f"{Path(config.checkpoint_path) / checkpoints.checkpoint_name(result['step'])}")
    return result


@contextlib.contextmanager
def _output_folder(config: TrainConfig, placement):
    """Where this process writes: checkpoint_path for the chief; for the other machines of a
    multi-worker run a scratch folder, deleted at the end (their saves join the chief's collectives)."""
    if placement is None or placement.is_chief:
        yield Path(config.checkpoint_path)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"east-worker{placement.worker_index}-") as scratch:
        yield Path(scratch)


def prepare_training(config: TrainConfig, report: Callable[[str], None] = log.info) -> TrainingSetup:
    """Everything before the first step: resume checks, data, devices, precision, model, restore.

    Sets the global Keras precision policy (``run_training`` restores the previous one).
    Writes nothing to ``config.checkpoint_path``.
    """
    import augmentation
    import data_preprocessor

    latest, resume_state, source_state = _check_resume(config, report)
    dataset = data_preprocessor.load_dataset(config.training_data_path, config.annotation_format,
                                             strict=config.strict, skip_unannotated=config.skip_unannotated)
    report(f"training data {config.training_data_path}: {dataset.summary()}")
    check_has_boxes(dataset, config)
    samples = dataset.samples + rehearsal_samples(config, len(dataset.samples), report)
    strategy, placement = _set_devices_and_precision(config)
    placement.slots(config.batch_size)  # ValueError now, not in the data workers
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        network, trainer, schedule = _build_model(config, source_state)
        trainer.optimizer.build(trainer.trainable_variables)
        step = _restore(config, latest, resume_state, network, trainer.optimizer, report)
    augment = augment_config(config)
    eval_side = augmentation.implied_max_side_len(dataset.samples, augment)  # the user's photos, not the rehearsal
    core = f" and --core_thresh={config.eval_core_thresh:g} (--eval_core_thresh)" if config.eval_core_thresh else ""
    report(f"this data at this augmentation shows text as eval.py does at --max_side_len={eval_side}; "
           f"checkpoints record it{core} as eval.py's default for this model")
    return TrainingSetup(config, samples, augment, network, trainer, schedule,
                         strategy, step, placement, eval_side)


def rehearsal_samples(config: TrainConfig, main_count: int, report: Callable[[str], None]) -> list:
    """The ``--rehearsal_data_path`` images a run mixes in: a seeded subset as many as make them
    ``--rehearsal_share`` of the training images (all of them at most); [] without the flag."""
    import data_preprocessor

    if not config.rehearsal_data_path:
        return []
    rehearsal = data_preprocessor.load_dataset(config.rehearsal_data_path, strict=config.strict,
                                               skip_unannotated=config.skip_unannotated)
    chosen = data_preprocessor.rehearsal_subset(main_count, len(rehearsal.samples), config.rehearsal_share,
                                                config.seed)
    report(f"rehearsal data {config.rehearsal_data_path}: {rehearsal.summary()}\n"
           f"{len(chosen)} of its images join the {main_count} of --training_data_path "
           f"(--rehearsal_share {config.rehearsal_share:g})")
    return [rehearsal.samples[index] for index in chosen]


def check_has_boxes(dataset, config: TrainConfig) -> None:
    """DataError before the first step when the data holds no box to learn from (every image background,
    e.g. a wrong --annotation_format, or every quad rejected), unless ``config.allow_empty``."""
    import data_preprocessor

    counts = dataset.counts
    if config.allow_empty or counts["boxes"] > counts["dont_care"]:
        return
    raise data_preprocessor.DataError(
        f"--training_data_path {config.training_data_path!r}: {counts['images']} usable images but no box to learn "
        f"from ({counts['boxes']} boxes, {counts['dont_care']} don't care; format {dataset.format}, "
        f"{len(dataset.problems)} item(s) skipped); check --annotation_format and "
        f"'python data_preprocessor.py stats --data_path ...', or pass --allow_empty to train on background only")


def augment_config(config: TrainConfig):
    """The data_preprocessor.AugmentConfig a training run's batches are built with."""
    import data_preprocessor

    return data_preprocessor.AugmentConfig(
        input_size=config.input_size, min_crop_side_ratio=config.min_crop_side_ratio,
        max_image_large_side=config.max_image_large_side, max_text_size=config.max_text_size,
        min_text_size=config.min_text_size, text_width_range=config.text_width_range,
        text_height_range=config.text_height_range, color_jitter=config.color_jitter,
        degrade=config.degrade)


def _check_resume(config: TrainConfig, report: Callable[[str], None]):
    """(latest checkpoint or None, its state or None, the state of the checkpoint whose weights the
    run starts from: the latest, else the fine-tuning source, else None); fails before any work on
    an unusable checkpoint folder or fine-tuning source, or on a resume whose flags changed
    (resume_flags)."""
    import checkpoints
    import resume_flags

    folder = Path(config.checkpoint_path)
    checkpoints.check_training_folder(folder)
    latest = checkpoints.latest_checkpoint(folder)
    resume_state = None
    if latest is not None:
        resume_state = checkpoints.read_state(latest)
        checkpoints.check_model_config(resume_state, config.model_config,
                                       f"checkpoint_path {str(folder)!r} ({latest.name})")
        resume_flags.check_resume(resume_state, config, f"checkpoint_path {str(folder)!r} ({latest.name})", report)
    source_state = resume_state
    if latest is None and config.pretrained_model_path:
        source = checkpoints.resolve_checkpoint(config.pretrained_model_path)
        source_state = checkpoints.read_state(source)
        checkpoints.check_model_config(source_state, config.model_config, f"pretrained model {str(source)!r}",
                                       fine_tune=True)
    return latest, resume_state, source_state


def _set_devices_and_precision(config: TrainConfig):
    """(distribution strategy or None, distribute.Placement); seeds, op determinism and the
    precision policy set."""
    import keras

    import distribute

    strategy, placement = None, distribute.Placement()
    if _tensorflow() is None:
        if config.worker_hosts:
            raise ValueError("--worker_hosts (several machines) needs the TensorFlow backend")
        # JAX: every device trains one model (the batch split across them), or one device.
        keras.distribution.set_distribution(distribute.jax_data_parallel(config.gpu_list, config.batch_size))
    elif config.worker_hosts or distribute.cluster_from_environment():
        # Before anything else runs TensorFlow operations: the strategy sets up the collectives.
        strategy, placement = distribute.multi_worker_strategy(config.worker_hosts, config.task_index)
    use_gpu = _gpu_count() > 0
    if strategy is None:
        strategy = make_strategy(config.gpu_list)
    _set_determinism(config.seed, use_gpu)
    if config.mixed_precision:
        # float16 with loss scaling where a GPU runs (fast on every CUDA GPU, T4 included);
        # bfloat16 elsewhere. Outputs and losses stay float32 (model.RboxOutputs).
        keras.mixed_precision.set_global_policy("mixed_float16" if use_gpu and _tensorflow() else "mixed_bfloat16")
    return strategy, placement


def _build_model(config: TrainConfig, source_state: dict | None):
    """(network, compiled trainer, learning-rate schedule), built in the caller's strategy scope.

    ``source_state``: the state.json of the checkpoint the weights will come from (resume or
    fine-tune), whose network options the model is rebuilt with; None builds a new network
    (and only then may backbone weights be downloaded)."""
    import keras

    import checkpoints
    import losses
    import model as east_model

    network = east_model.build_east(config.input_size, backbone=config.backbone,
                                    backbone_weights="none" if source_state else config.backbone_weights,
                                    **checkpoints.network_options(source_state))
    if config.bn_momentum:
        for layer in network.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = config.bn_momentum
    trainer = east_model.training_model(network)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.init_learning_rate, decay_steps=config.lr_decay_steps,
        decay_rate=config.lr_decay_rate, staircase=True)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=losses.east_loss_for_fit,
                    metrics=[losses.score_loss, losses.geo_loss])
    _build_metrics(trainer, config.input_size)
    return network, trainer, schedule


def _build_metrics(trainer, input_size: int) -> None:
    """Creates the compiled metrics' variables now, eagerly, on one zero batch (then zeroes them).

    Left to the first compiled step, they are created inside its trace, and TensorFlow then traces
    the whole train step a second time: about 6 s of a tiny CPU run's 25 s start-up.
    """
    import keras

    map_size = input_size // network_io.OUTPUT_STRIDE
    targets = keras.ops.zeros((1, map_size, map_size, network_io.TARGET_CHANNELS))
    trainer.compute_metrics(None, targets, targets[..., :network_io.PREDICTION_CHANNELS], None)
    trainer.reset_metrics()


def _restore(config: TrainConfig, latest, resume_state, network, optimizer, report) -> int:
    """Loads the latest checkpoint (returning its step) or the fine-tuning weights (step 0)."""
    import keras

    import checkpoints

    if latest is not None:
        checkpoints.restore_checkpoint(latest, network, optimizer)
        step = int(resume_state["step"])
        if int(keras.ops.convert_to_numpy(optimizer.iterations)) != step:
            raise checkpoints.CheckpointError(f"{latest}: optimizer step does not match state.json")
        report(f"resumed from step {step}")
        if config.pretrained_model_path:
            report("--pretrained_model_path is ignored when resuming")
        return step
    if config.pretrained_model_path:
        info = checkpoints.load_pretrained_weights(network, config.pretrained_model_path, config.model_config)
        report(f"fine-tuning from {info['checkpoint']} (its step {info['step']}); optimizer and step start fresh")
    return 0


class TrainLogger:
    """Owns what a run reports per logged step: train_log.csv, TensorBoard scalars, the tqdm bar.

    It writes into ``folder`` (default config.checkpoint_path; a scratch folder on the
    non-chief machines of a multi-worker run). Opening it cleans leftovers of interrupted saves and cuts train_log.csv back to the rows up
    to ``step`` (a resumed run rewrites what the killed one logged after its last checkpoint).
    ``step_done()`` after every step; ``write(step, losses, lr)`` on logged steps (it computes
    images/s over the steps since the previous row); ``close()`` (or ``with``) at the end.
    """

    def __init__(self, config: TrainConfig, step: int, folder: Path | None = None):
        import checkpoints

        self.folder = Path(config.checkpoint_path if folder is None else folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        checkpoints.clean_temporary(self.folder)
        self._batch_size = config.batch_size
        path = self.folder / checkpoints.TRAIN_LOG_FILE
        _prepare_train_log(path, step)
        self._handle = open(path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._handle)
        self._tf = _tensorflow()
        self._writer = (self._tf.summary.create_file_writer(str(self.folder / checkpoints.LOGS_DIR))
                        if self._tf is not None else None)
        if self._writer is None:
            log.info("TensorBoard scalars need the TensorFlow backend; writing train_log.csv only")
        self._progress = None
        if config.progress:
            from tqdm import tqdm
            self._progress = tqdm(total=config.max_steps, initial=step, unit="step", dynamic_ncols=True,
                                  file=sys.stderr)
        self.last = {"step": step}
        self._window_started, self._window_steps = time.perf_counter(), 0

    def step_done(self) -> None:
        """Counts one step (for images/s) and advances the progress bar."""
        self._window_steps += 1
        if self._progress is not None:
            self._progress.update(1)

    def write(self, step: int, values: dict, lr: float) -> dict:
        """Appends the row for ``step`` (values: loss, score_loss, geo_loss) everywhere; returns it."""
        images_per_sec = self._window_steps * self._batch_size / max(time.perf_counter() - self._window_started, 1e-9)
        row = {"step": step, "loss": values["loss"], "score_loss": values["score_loss"],
               "geo_loss": values["geo_loss"], "lr": lr, "images_per_sec": images_per_sec}
        self._csv.writerow([step] + [f"{row[key]:.9g}" for key in LOG_COLUMNS[1:]])
        self._handle.flush()
        if self._writer is not None:
            _write_scalars(self._tf, self._writer, step, row)
        if self._progress is not None:
            self._progress.set_postfix(loss=f"{row['loss']:.4f}", score=f"{row['score_loss']:.4f}",
                                       geo=f"{row['geo_loss']:.4f}", lr=f"{lr:.2e}",
                                       img_s=f"{images_per_sec:.1f}", refresh=False)
        self.last = row
        self._window_started, self._window_steps = time.perf_counter(), 0
        return row

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        # The progress bar's last refresh shows the final step before the csv closes.
        if self._progress is not None:
            self._progress.close()
        self._handle.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> "TrainLogger":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def train_loop(setup: TrainingSetup, logger: TrainLogger, on_step: Callable[[int], None] | None = None) -> dict:
    """Steps from ``setup.step`` to ``max_steps``: one compiled train step per batch, logging and
    checkpointing as the config says. Returns the last logged row with ``step`` = steps done.

    Batches are read in place from the stream's shared memory (``BatchStream.take``), never
    copied on the host: each is held until its step has finished (``runner.wait``), at most
    STEPS_AHEAD steps after it was started, and only then given back to the workers. The loop
    holds STEPS_AHEAD batches when it takes the next (the stream's ``leases``), so the next
    build is requested when the oldest is given back, after this step has started, not on the
    way to starting it.
    """
    import data_preprocessor
    import train_step

    config, step = setup.config, setup.step
    runner = train_step.TrainStepRunner(setup.trainer, setup.strategy)
    held = collections.deque()  # (lease, logs) of the steps that may still read their batch
    with data_preprocessor.BatchStream(setup.samples, seed=config.seed, start_step=step,
                                       batch_size=config.batch_size, config=setup.augment,
                                       nb_workers=config.nb_workers, leases=STEPS_AHEAD,
                                       slots=setup.placement.slots(config.batch_size) if setup.placement else None
                                       ) as stream:
        while step < config.max_steps:
            lease = stream.take()
            # Device values: the host goes on to the next batch while this step runs;
            # it waits only where a loss is read (logged steps, checkpoints) or a batch is given back.
            held.append((lease, runner.run(lease.images, lease.targets)))
            if len(held) > STEPS_AHEAD:
                _give_back(runner, *held.popleft())
            step += 1
            logger.step_done()
            _log_and_save(setup, runner, logger, held[-1][1], step)
            if on_step is not None:
                logger.flush()
                on_step(step)
        while held:
            _give_back(runner, *held.popleft())
    runner.sync()
    return dict(logger.last, step=step)


def _give_back(runner, lease, logs) -> None:
    runner.wait(logs)
    lease.release()


def _log_and_save(setup: TrainingSetup, runner, logger: TrainLogger, logs: dict, step: int) -> None:
    """Writes the log row and the checkpoint due after ``step`` (if any)."""
    import keras

    import checkpoints
    import inference_record
    import resume_flags

    config = setup.config
    log_now = step % config.log_steps == 0 or step == config.max_steps
    save_now = step % config.save_checkpoint_steps == 0 or step == config.max_steps
    if not (log_now or save_now):
        return
    values = _finite_logs(runner.to_floats(logs), step)
    if log_now:
        logger.write(step, values, float(keras.ops.convert_to_numpy(setup.schedule(step - 1))))
    if save_now:
        runner.sync()
        state = {"seed": config.seed, "batch_size": config.batch_size, "model": config.model_config,
                 "flags": resume_flags.recorded(config), "data_position": {"seed": config.seed, "next_step": step},
                 inference_record.STATE_KEY: {"max_side_len": setup.eval_max_side_len,
                                              "core_thresh": config.eval_core_thresh}}
        saved = checkpoints.save_checkpoint(logger.folder, step, setup.network, setup.trainer.optimizer, state,
                                            max_to_keep=config.max_to_keep)
        if setup.placement is not None and not setup.placement.is_chief:
            shutil.rmtree(saved)  # a non-chief's copy: written only to take part in the save
        else:
            log.info("checkpoint saved: %s", saved)


def _prepare_train_log(path: Path, last_step: int) -> None:
    """Keep train_log.csv rows up to ``last_step`` (the restored step) and its header."""
    rows = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is not None and tuple(header) != LOG_COLUMNS:
                raise ValueError(f"{path}: unexpected header {header}, expected {list(LOG_COLUMNS)}")
            rows = [row for row in reader if row and int(row[0]) <= last_step]
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(LOG_COLUMNS)
    writer.writerows(rows)
    atomic_io.write_text_atomic(path, text.getvalue())


def _finite_logs(values: dict, step: int) -> dict:
    """``values`` unchanged, or FloatingPointError when the loss is not finite (not saved)."""
    if not np.isfinite(values["loss"]):
        raise FloatingPointError(f"loss is {values['loss']} at or before step {step}; lower "
                                 f"--init_learning_rate or check the data")
    return values


def _write_scalars(tf, writer, step: int, row: dict) -> None:
    """TensorBoard scalars through tf.summary.write, which (unlike tf.summary.scalar) works
    without the tensorboard package installed; TensorBoard shows them as scalars."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    with writer.as_default(step=step):
        for key in LOG_COLUMNS[1:]:
            tf.summary.write(key, tf.constant(row[key], dtype=tf.float32), metadata=metadata)
    writer.flush()


def define_flags() -> None:
    """Define the command-line flags (EAST-tf2's names and defaults, plus additions)."""
    from absl import flags

    defaults = TrainConfig()
    flags.DEFINE_integer("input_size", defaults.input_size, "input size for training of the network")
    flags.DEFINE_integer("batch_size", defaults.batch_size, "batch size for training (global, split across GPUs)")
    flags.DEFINE_integer("nb_workers", defaults.nb_workers, "number of processes building training batches")
    flags.DEFINE_float("init_learning_rate", defaults.init_learning_rate, "initial learning rate")
    flags.DEFINE_float("lr_decay_rate", defaults.lr_decay_rate, "decay rate for the learning rate")
    flags.DEFINE_integer("lr_decay_steps", defaults.lr_decay_steps,
                         "number of steps after which the learning rate is decayed by decay rate (staircase)")
    flags.DEFINE_integer("max_steps", defaults.max_steps, "maximum number of steps")
    flags.DEFINE_string("checkpoint_path", defaults.checkpoint_path,
                        "folder for checkpoints, train_log.csv and TensorBoard logs; rerun to resume")
    flags.DEFINE_integer("save_checkpoint_steps", defaults.save_checkpoint_steps,
                         "period at which checkpoints are saved (defaults to every 50 steps)")
    flags.DEFINE_string("training_data_path", defaults.training_data_path, "path to training data")
    flags.DEFINE_integer("max_image_large_side", defaults.max_image_large_side,
                         "maximum size of the large side of a training image before cropping a patch")
    flags.DEFINE_integer("max_text_size", defaults.max_text_size,
                         "maximum size of a text instance in an image; image resized if this limit is exceeded")
    flags.DEFINE_integer("min_text_size", defaults.min_text_size,
                         "minimum size of a text instance; if smaller, then it is ignored during training")
    flags.DEFINE_float("min_crop_side_ratio", defaults.min_crop_side_ratio,
                       "the minimum ratio of min(H, W) when taking a random crop from the input image")
    flags.DEFINE_string("geometry", defaults.geometry, "geometry type; only RBOX is implemented")
    flags.DEFINE_boolean("suppress_warnings_and_error_messages", defaults.suppress_warnings_and_error_messages,
                         "hide per-image data warnings during training (they are summarised once)")
    _define_added_flags(flags, defaults)


def _define_added_flags(flags, defaults: "TrainConfig") -> None:
    """The flags this project adds to EAST-tf2's (defaults from ``defaults``)."""
    import postprocess
    from annotation_loaders import format_choices

    flags.DEFINE_string("annotation_format", defaults.annotation_format,
                        f"annotation format of training_data_path ({', '.join(format_choices())})")
    flags.DEFINE_boolean("strict", defaults.strict, "fail on the first annotation problem instead of skipping")
    flags.DEFINE_boolean("skip_unannotated", defaults.skip_unannotated,
                         "skip images without an annotation file instead of using them as background")
    flags.DEFINE_string("pretrained_model_path", defaults.pretrained_model_path,
                        "fine-tune: start from this checkpoint's weights (folder or ckpt-N), fresh optimizer, step 0")
    flags.DEFINE_integer("seed", defaults.seed, "seed of weights init and data augmentation")
    flags.DEFINE_boolean("mixed_precision", defaults.mixed_precision,
                         "float16 (GPU) / bfloat16 (CPU) compute with float32 weights")
    flags.DEFINE_integer("max_to_keep", defaults.max_to_keep, "checkpoints kept in checkpoint_path")
    flags.DEFINE_string("backbone", defaults.backbone, "resnet50 (EAST-tf2), mobilenetv2 (light, CPU demos) or tiny (tests and smoke runs only)")
    flags.DEFINE_string("backbone_weights", defaults.backbone_weights,
                        "imagenet (download), none (random init) or the path of a local .h5 file")
    flags.DEFINE_string("gpu_list", defaults.gpu_list, "GPUs MirroredStrategy trains on, e.g. 0,1; empty = all "
                        "visible GPUs (eval.py's --gpu_list instead sets CUDA_VISIBLE_DEVICES)")
    flags.DEFINE_integer("log_steps", defaults.log_steps, "steps between train_log.csv / TensorBoard rows")
    flags.DEFINE_float("bn_momentum", defaults.bn_momentum,
                       "momentum of every BatchNorm's moving statistics; 0 keeps the network's own (0.997, "
                       "backbone 0.99/0.999). Short runs from scratch need ~0.9 or inference sees stale statistics")
    flags.DEFINE_string("worker_hosts", defaults.worker_hosts,
                        "several machines (TensorFlow): host:port of every machine, the same list everywhere, "
                        "the first is the chief, e.g. 10.0.0.1:2222,10.0.0.2:2222; empty = one machine "
                        "(or the cluster in TF_CONFIG)")
    flags.DEFINE_integer("task_index", defaults.task_index, "this machine's position in --worker_hosts")
    flags.DEFINE_string("text_width_range", "",
                        "e.g. 0.03,0.6: scale each text crop so one random box is 3..60% of --input_size wide "
                        "(log-uniform), whatever the photo's resolution; empty = EAST-tf2's random scale")
    flags.DEFINE_string("text_height_range", "",
                        "e.g. 0.04,0.3: as --text_width_range, but one random box is 4..30% of --input_size "
                        "tall, so plates of every aspect (2:1 US, 4.7:1 EU) meet the same character sizes; "
                        "give at most one of the two")
    flags.DEFINE_boolean("allow_flag_change", defaults.allow_flag_change,
                         "resume even though a flag that shapes training changed (learning-rate schedule, seed, "
                         "batch_size, bn_momentum, augmentation sizes; see README)")
    flags.DEFINE_string("rehearsal_data_path", defaults.rehearsal_data_path,
                        "fine-tune: a second annotated folder (e.g. the synthetic scenes the base model learned "
                        "from, data/demo/train) mixed into the training images so the model keeps what it knew "
                        "on photos unlike yours; empty = none")
    flags.DEFINE_float("rehearsal_share", defaults.rehearsal_share,
                       "share of the training images drawn from --rehearsal_data_path, in [0, 1) (0.5: as many "
                       "as --training_data_path has, at most all of them)")
    flags.DEFINE_float("color_jitter", defaults.color_jitter,
                       "strength s in [0, 1) of a random brightness, contrast and saturation (each x[1-s, 1+s]) "
                       "and colour cast (each channel x[1-s/2, 1+s/2]) of every training crop; 0 = none (EAST-tf2)")
    flags.DEFINE_float("degrade", defaults.degrade,
                       "probability in [0, 1] that a training crop is degraded as a poor camera shows it: lost "
                       "resolution, sensor noise, JPEG blocks (augmentation.degrade_camera); 0 = never (EAST-tf2)")
    flags.DEFINE_float("eval_core_thresh", defaults.eval_core_thresh,
                       "the --core_thresh eval.py and serve.py use with this model when they are not given one, "
                       "recorded in every checkpoint; 0: off (EAST-tf2). make demo sets %g for its synthetic-only "
                       "model (README, \"--core_thresh\")" % postprocess.SYNTHETIC_ONLY_CORE_THRESH)
    flags.DEFINE_boolean("allow_empty", defaults.allow_empty,
                         "train even when the data holds no box to learn from (background-only fine-tuning); "
                         "without it such data stops the run before the first step")


TEXT_SIZE_RANGE_FLAGS = ("text_width_range", "text_height_range")  # flags parsed by parse_text_size_range


def config_from_flags(flag_values) -> TrainConfig:
    """The frozen TrainConfig for parsed absl flag values (ValueError naming a bad one)."""
    names = [field.name for field in dataclasses.fields(TrainConfig)
             if field.name not in ("progress",) + TEXT_SIZE_RANGE_FLAGS]
    values = {name: getattr(flag_values, name) for name in names}
    ranges = {name: parse_text_size_range(getattr(flag_values, name), name) for name in TEXT_SIZE_RANGE_FLAGS}
    return TrainConfig(**values, **ranges)


def parse_text_size_range(text: str, name: str = "text_width_range") -> tuple[float, float] | None:
    """``"0.03,0.6"`` -> (0.03, 0.6); ``""`` -> None (EAST-tf2's augmentation); ``name`` is the
    flag, for the message."""
    if not text.strip():
        return None
    try:
        low, high = (float(value) for value in text.split(","))
    except ValueError:
        raise ValueError(f"--{name} must be two comma-separated fractions such as 0.03,0.6, "
                         f"got {text!r}") from None
    return low, high


def main(argv, *, on_step: Callable[[int], None] | None = None) -> int:
    from absl import flags

    import checkpoints
    import data_preprocessor
    import distribute
    import model as east_model
    import run_lock

    if len(argv) > 1:
        print(f"train.py: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        config = config_from_flags(flags.FLAGS)
        # The cluster (--worker_hosts or TF_CONFIG) and the batch's split across it, checked up front.
        distribute.this_placement(config.worker_hosts, config.task_index).slots(config.batch_size)
    except ValueError as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    level = logging.WARNING if config.suppress_warnings_and_error_messages else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # absl's handler on the root logger follows this level
    if config.suppress_warnings_and_error_messages:
        logging.getLogger("data_preprocessor").setLevel(logging.ERROR)
    try:
        run_training(config, report=print, on_step=on_step)
    except (checkpoints.CheckpointError, data_preprocessor.DataError,
            east_model.BackboneWeightsError, FloatingPointError, run_lock.RunLockError,
            path_guard.PathOverlapError) as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train.py: interrupted; rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if hasattr(signal, "SIGUSR1"):
        # `kill -USR1 PID` prints every thread's Python stack to stderr and training goes on: where a
        # run that seems stuck is waiting (data workers, a checkpoint write, the device).
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
