"""Training checkpoints on disk: atomic saves, exact resume, inference loading.

Layout of a ``--checkpoint_path`` folder::

    <checkpoint_path>/
      ckpt-<step>/              one complete checkpoint (the last ``max_to_keep`` are kept)
        model.weights.h5        every model weight, BatchNorm statistics included
        optimizer.npz           the optimizer's variables in ``optimizer.variables`` order
                                (the step counter, which drives the learning-rate schedule, first)
        state.json              step, seed, data position, model config, format version
      latest                    one line naming the newest complete checkpoint ("ckpt-<step>")
      train_log.csv, logs/      written by train.py

A checkpoint is written under a hidden temporary name and renamed into place once complete;
only then is ``latest`` replaced (temporary file, fsync, ``os.replace``). A process killed at
any moment therefore leaves the previous checkpoint loadable. Nothing relies on symbolic
links or file locks, so the folder may live on a FUSE mount such as Colab's Google Drive.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import keras

import atomic_io
import inference_record
import model as east_model
import network_io

log = logging.getLogger(__name__)

LATEST_FILE = "latest"
STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
TRAIN_LOG_FILE = "train_log.csv"
LOGS_DIR = "logs"
CHECKPOINT_PREFIX = "ckpt-"
TEMP_PREFIX = atomic_io.TEMP_PREFIX
FORMAT_NAME = "east-keras-checkpoint"
FORMAT_VERSION = 1
# Checked on resume (exact); fine-tuning checks only the backbone and takes the rest from the source.
MODEL_CONFIG_KEYS = ("input_size", "backbone")
# Properties of the weights recorded beside MODEL_CONFIG_KEYS (model.network_config); a state
# without them is legacy: distance scale = its input_size, pixels in LEGACY_PIXEL_CONVENTION.
NETWORK_CONFIG_KEYS = ("distance_scale", "pixel_convention")

_CHECKPOINT_RE = re.compile(r"^ckpt-(\d+)$")
# A damaged checkpoint that a new save of the same step had to make room for is renamed, never deleted.
DAMAGED_SUFFIX = ".damaged"
_DAMAGED_RE = re.compile(r"^ckpt-\d+\.damaged(-\d+)?$")
_OWN_NAMES = {LATEST_FILE, TRAIN_LOG_FILE, LOGS_DIR}


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be used (foreign content, incompatible model)."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files are missing, truncated or unreadable (not a model mismatch)."""


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint taken after ``step`` training steps."""
    return f"{CHECKPOINT_PREFIX}{int(step)}"


def _remove_tree_atomic(path: Path) -> None:
    """Delete a checkpoint folder: rename it to a temporary name first, so a kill halfway
    never leaves a partial folder under a checkpoint name."""
    doomed = path.with_name(f"{TEMP_PREFIX}delete-{path.name}-{os.getpid()}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def list_checkpoints(folder: str | os.PathLike) -> list[int]:
    """Steps of the complete-looking ``ckpt-<step>`` folders in ``folder``, ascending."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    steps = []
    for entry in folder.iterdir():
        match = _CHECKPOINT_RE.match(entry.name)
        if match and entry.is_dir():
            steps.append(int(match.group(1)))
    return sorted(steps)


def check_training_folder(folder: str | os.PathLike, log_columns: tuple[str, ...] | None = None) -> None:
    """Refuse a ``--checkpoint_path`` that holds something other than an EAST training run.

    Accepted: a missing or empty folder, or one holding only this module's layout (``latest``,
    ``ckpt-<step>/``, ``train_log.csv``, ``logs/``, hidden files). Nothing is modified.

    Args:
        folder: the --checkpoint_path.
        log_columns: when given, an existing train_log.csv must start with this header.

    Raises:
        CheckpointError: the path is a file, the folder holds other files, or its train_log.csv
            was written by something else.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint_path {str(folder)!r} is a file, expected a folder")
    foreign = sorted(entry.name for entry in folder.iterdir()
                     if not (entry.name.startswith(".") or entry.name in _OWN_NAMES
                             or ((_CHECKPOINT_RE.match(entry.name) or _DAMAGED_RE.match(entry.name))
                                 and entry.is_dir())))
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise CheckpointError(
            f"checkpoint_path {str(folder)!r} holds files that are not an EAST training run "
            f"({shown}{more}); give a new or empty folder, or the folder of an earlier run of "
            f"train.py. Nothing was changed.")
    if log_columns is not None:
        _check_train_log(folder / TRAIN_LOG_FILE, log_columns)


def _check_train_log(path: Path, log_columns: tuple[str, ...]) -> None:
    """CheckpointError unless ``path`` is missing, empty or starts with the header ``log_columns``."""
    if not path.is_file():
        return
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CheckpointError(f"{path}: unreadable ({error}); move it away or give another --checkpoint_path") from None
    if header is not None and tuple(header) != tuple(log_columns):
        raise CheckpointError(f"{path}: not a train.py log (header {','.join(header)[:80]!r}, expected "
                              f"{','.join(log_columns)!r}); move it away or give another --checkpoint_path. "
                              f"Nothing was changed.")


def clean_temporary(folder: str | os.PathLike) -> None:
    """Remove leftovers of interrupted saves (hidden ``.tmp-*`` entries) from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name.startswith(TEMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def latest_checkpoint(folder: str | os.PathLike, report: Callable[[str], None] = log.warning) -> Path | None:
    """The newest intact checkpoint, starting from the one ``<folder>/latest`` names.

    When that one is damaged (a file missing, truncated or unreadable, e.g. a Drive sync cut
    short), the next older intact ``ckpt-<step>`` is returned and ``report`` says so. Nothing
    is deleted or changed.

    Returns:
        the checkpoint folder, or None when there is no ``latest``.

    Raises:
        CheckpointError: ``latest`` is not a 'ckpt-<step>' line.
        DamagedCheckpointError: no intact checkpoint at or below the one ``latest`` names.
    """
    latest = Path(folder) / LATEST_FILE
    if not latest.is_file():
        return None
    name = latest.read_text(encoding="utf-8", errors="replace").strip()
    match = _CHECKPOINT_RE.match(name)
    if not match:
        raise CheckpointError(f"{latest}: expected a line 'ckpt-<step>', found {name[:80]!r}")
    named_step = int(match.group(1))
    older = [step for step in reversed(list_checkpoints(folder)) if step < named_step]
    damage = []
    for step in [named_step, *older]:
        checkpoint = Path(folder) / checkpoint_name(step)
        try:
            check_intact(checkpoint)
        except DamagedCheckpointError as error:
            damage.append(str(error))
            continue
        if damage:
            report(f"{damage[0]}; using the newest intact checkpoint {checkpoint.name} instead "
                   f"(the damaged one is left in place)")
        return checkpoint
    raise DamagedCheckpointError(f"no intact checkpoint in {str(folder)!r}: " + "; ".join(damage)
                                 + ". Nothing was changed.")


def _check_complete(checkpoint: Path) -> None:
    missing = [name for name in (STATE_FILE, WEIGHTS_FILE, OPTIMIZER_FILE)
               if not (checkpoint / name).is_file()]
    if missing:
        raise DamagedCheckpointError(f"checkpoint {str(checkpoint)!r} is incomplete: missing {', '.join(missing)}")


def check_intact(checkpoint: str | os.PathLike) -> None:
    """Raise DamagedCheckpointError unless every file of ``checkpoint`` is present and readable.

    Reads state.json, opens model.weights.h5 (HDF5 notices a truncated file on opening) and
    reads every array of optimizer.npz (zip checks each member's CRC).
    """
    checkpoint = Path(checkpoint)
    _check_complete(checkpoint)
    read_state(checkpoint)
    import h5py

    try:
        with h5py.File(checkpoint / WEIGHTS_FILE, "r"):
            pass
    except OSError as error:
        raise DamagedCheckpointError(f"{checkpoint / WEIGHTS_FILE} is damaged ({_first_line(error)})") from None
    _read_optimizer_values(checkpoint)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _read_optimizer_values(checkpoint: Path) -> list[np.ndarray]:
    """The arrays of optimizer.npz in order; DamagedCheckpointError when the file is truncated."""
    try:
        with np.load(checkpoint / OPTIMIZER_FILE) as archive:
            return [archive[f"arr_{index}"] for index in range(len(archive.files))]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise DamagedCheckpointError(f"{checkpoint / OPTIMIZER_FILE} is damaged ({_first_line(error)})") from None


def read_state(checkpoint: str | os.PathLike) -> dict:
    """The ``state.json`` of a checkpoint folder, validated.

    Returns:
        dict with at least ``step`` (int), ``seed`` (int), ``model`` ({input_size, backbone}, and
        distance_scale, pixel_convention when written since those were recorded).

    Raises:
        CheckpointError: missing, unreadable or not written by this module.
    """
    path = Path(checkpoint) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found; {str(checkpoint)!r} is not an EAST checkpoint") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedCheckpointError(f"{path} is damaged (unreadable: {error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an EAST checkpoint state (format {state.get('format')!r})"
                              if isinstance(state, dict) else f"{path}: expected a JSON object")
    if state.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer version (format version {state['version']}, "
                              f"this code reads up to {FORMAT_VERSION})")
    for key in ("step", "model"):
        if key not in state:
            raise CheckpointError(f"{path}: missing {key!r}")
    return state


def network_options(state: dict | None) -> dict:
    """``build_east`` keyword arguments that rebuild the network a checkpoint's weights belong to.

    Args:
        state: a checkpoint's state (``read_state``), or None for a fresh network.

    Returns:
        {} for None (today's defaults); else {"distance_scale": int, "pixel_convention": str},
        legacy values (input_size, LEGACY_PIXEL_CONVENTION) where the state predates them.
    """
    if state is None:
        return {}
    saved = state["model"]
    return {"distance_scale": int(saved.get("distance_scale", saved["input_size"])),
            "pixel_convention": saved.get("pixel_convention", network_io.LEGACY_PIXEL_CONVENTION)}


def check_model_config(state: dict, model_config: dict, where: str, *, fine_tune: bool = False) -> None:
    """Raise CheckpointError if a checkpoint's model config differs from ``model_config``.

    Resuming (``fine_tune=False``) must match input_size and backbone exactly: a resumed run
    continues the same run. Fine-tuning needs only the same backbone: the distance head's
    scale is fixed (network_io.DISTANCE_SCALE, or the source's legacy one, which the new run
    adopts through ``network_options``), so the weights work at any input size.
    """
    keys = ("backbone",) if fine_tune else MODEL_CONFIG_KEYS
    saved = {key: state["model"].get(key) for key in keys}
    wanted = {key: model_config[key] for key in keys}
    if saved != wanted:
        differences = ", ".join(f"{key} {saved[key]!r} there, {wanted[key]!r} asked"
                                for key in keys if saved[key] != wanted[key])
        same = "--backbone" if fine_tune else "--input_size/--backbone"
        raise CheckpointError(f"{where} holds an incompatible model ({differences}); use the same "
                              f"{same}, or another --checkpoint_path")


def save_checkpoint(folder: str | os.PathLike, step: int, model: keras.Model, optimizer,
                    state: dict, *, max_to_keep: int = 5,
                    on_stage: Callable[[str], None] | None = None) -> Path:
    """Write ``ckpt-<step>`` atomically, point ``latest`` at it, drop the oldest beyond max_to_keep.

    Args:
        folder: the --checkpoint_path folder (created if missing).
        step: training steps done; the checkpoint's name.
        model: the inference model (``model.build_east``); its weights are saved.
        optimizer: the compiled optimizer; ``optimizer.variables`` are saved in order.
        state: JSON-able extra state; must hold ``model`` ({input_size, backbone}) and ``seed``.
        max_to_keep: checkpoints kept (at least 1; the one ``latest`` names is never removed).
        on_stage: called with "before_rename" (files written, not yet renamed into place) and
            "before_latest" (renamed, ``latest`` not yet updated); tests use it to stop a save there.

    Returns:
        Path of the new checkpoint folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    temp = folder / f"{TEMP_PREFIX}{name}-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    model.save_weights(str(temp / WEIGHTS_FILE))
    values = [keras.ops.convert_to_numpy(variable) for variable in optimizer.variables]
    with open(temp / OPTIMIZER_FILE, "wb") as handle:
        np.savez(handle, *values)
        handle.flush()
        os.fsync(handle.fileno())
    full_state = dict(state, format=FORMAT_NAME, version=FORMAT_VERSION, step=int(step),
                      model={**state["model"], **east_model.network_config(model)},
                      optimizer_variables=[variable.path for variable in optimizer.variables])
    with open(temp / STATE_FILE, "w", encoding="utf-8") as handle:
        json.dump(full_state, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    if on_stage is not None:
        on_stage("before_rename")

    final = folder / name
    if final.exists():  # left by a run killed after this rename but before updating latest
        _make_room(final)
    os.rename(temp, final)
    atomic_io.fsync_dir(folder)
    if on_stage is not None:
        on_stage("before_latest")
    atomic_io.write_text_atomic(folder / LATEST_FILE, name + "\n")

    keep = max(1, int(max_to_keep))
    for old_step in list_checkpoints(folder)[:-keep]:
        if old_step != step:
            _remove_tree_atomic(folder / checkpoint_name(old_step))
    return final


def _make_room(final: Path) -> None:
    """Delete an intact leftover ``final``; rename a damaged one to ``ckpt-<step>.damaged``."""
    try:
        check_intact(final)
    except DamagedCheckpointError as error:
        aside = final.with_name(final.name + DAMAGED_SUFFIX)
        if aside.exists():
            aside = final.with_name(f"{final.name}{DAMAGED_SUFFIX}-{os.getpid()}")
        os.rename(final, aside)
        log.warning("%s; kept as %s", error, aside.name)
        return
    _remove_tree_atomic(final)


def restore_checkpoint(checkpoint: str | os.PathLike, model: keras.Model, optimizer) -> dict:
    """Load a checkpoint's weights into ``model`` and its variables into ``optimizer``.

    ``optimizer`` must be built for the model's trainable variables (``optimizer.build``).

    Returns:
        the checkpoint's state dict (see ``read_state``).

    Raises:
        CheckpointError: the checkpoint does not fit this model/optimizer.
    """
    checkpoint = Path(checkpoint)
    _check_complete(checkpoint)
    state = read_state(checkpoint)
    _load_weights(model, checkpoint / WEIGHTS_FILE)
    values = _read_optimizer_values(checkpoint)
    variables = optimizer.variables
    if len(values) != len(variables) or any(
            tuple(value.shape) != tuple(variable.shape) for value, variable in zip(values, variables)):
        raise CheckpointError(
            f"{checkpoint / OPTIMIZER_FILE}: {len(values)} optimizer variables do not match this "
            f"optimizer's {len(variables)} (was --mixed_precision or the model changed?)")
    for variable, value in zip(variables, values):
        variable.assign(value)
    return state


def _load_weights(model: keras.Model, weights_path: Path) -> None:
    try:
        model.load_weights(str(weights_path))
    except OSError as error:  # h5py: truncated or corrupt file; a mismatch is ValueError/KeyError
        raise DamagedCheckpointError(f"{weights_path} is damaged ({_first_line(error)})") from None
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"{weights_path}: weights do not fit this model "
                              f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


def resolve_checkpoint(model_path: str | os.PathLike) -> Path:
    """The checkpoint folder meant by ``model_path``.

    Args:
        model_path: a --checkpoint_path folder (its ``latest`` is used), a ``ckpt-<step>``
            folder, or the ``model.weights.h5`` inside one.

    Raises:
        CheckpointError: nothing usable there.
    """
    path = Path(model_path)
    if path.is_file() and path.name.endswith(".weights.h5"):
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"model path {str(model_path)!r} does not exist")
    if path.is_dir() and (path / LATEST_FILE).is_file():
        return latest_checkpoint(path)
    if path.is_dir() and (path / STATE_FILE).is_file():
        _check_complete(path)
        return path
    raise CheckpointError(
        f"model path {str(model_path)!r} is not an EAST checkpoint: expected a training folder "
        f"with a '{LATEST_FILE}' file, a 'ckpt-<step>' folder, or its {WEIGHTS_FILE}")


def load_pretrained_weights(model: keras.Model, model_path: str | os.PathLike, model_config: dict) -> dict:
    """Load another run's weights into ``model`` for fine-tuning (optimizer and step untouched).

    Returns:
        info dict: checkpoint (str), step (int) of the source checkpoint.

    ``model`` must be built with ``network_options`` of the source's state (train.py does);
    its input_size may differ from the source's.

    Raises:
        CheckpointError: no checkpoint there, one of another backbone, or ``model`` built with
            another distance scale or pixel convention than the source's weights.
    """
    checkpoint = resolve_checkpoint(model_path)
    state = read_state(checkpoint)
    where = f"pretrained model {str(checkpoint)!r}"
    check_model_config(state, model_config, where, fine_tune=True)
    built, needed = east_model.network_config(model), network_options(state)
    if built != needed:
        raise CheckpointError(f"{where}: its weights need a network built with {needed}, got {built}")
    _load_weights(model, checkpoint / WEIGHTS_FILE)
    return {"checkpoint": str(checkpoint), "step": int(state["step"])}


def load_model_for_inference(model_path: str | os.PathLike) -> tuple[keras.Model, dict]:
    """Build the network a checkpoint was trained with and load its weights (no download).

    Args:
        model_path: a --checkpoint_path folder (latest checkpoint), a ``ckpt-<step>`` folder,
            or its ``model.weights.h5``.

    Returns:
        (model, info): the ``build_east`` model with outputs [score_map, geo_map], and
        info = {checkpoint: str, step: int, input_size: int, backbone: str, distance_scale: int,
        pixel_convention: str, max_side_len: int or None, core_thresh: float or None}; max_side_len is
        the eval scale the training data and augmentation imply, core_thresh the box filter its training
        run chose (train.py records both; None in older checkpoints).

    Raises:
        CheckpointError: nothing usable at model_path.
    """
    checkpoint = resolve_checkpoint(model_path)
    state = read_state(checkpoint)
    model_config = state["model"]
    network = east_model.build_east(int(model_config["input_size"]), backbone=model_config["backbone"],
                                    backbone_weights="none", **network_options(state))
    _load_weights(network, checkpoint / WEIGHTS_FILE)
    info = {"checkpoint": str(checkpoint), "step": int(state["step"]),
            "input_size": int(model_config["input_size"]), "backbone": model_config["backbone"],
            **network_options(state), **inference_record.as_info(state.get(inference_record.STATE_KEY))}
    return network, info
