"""Which train.py flags may change when a run resumes, recorded in each checkpoint's state.json.

A resumed run is the same run: weights, Adam state and step come from the checkpoint, and the
flags below decide what happens from there. Changing one of them silently would mix two runs
(a new learning-rate schedule from step N, another data order), so a resume that changes one is
refused with one line naming the flag, the value the run was started with and the new value;
``--allow_flag_change`` continues with the new values (said in one line; the next checkpoint
records them).

- ``CHECKED``: refused unless --allow_flag_change: the learning-rate schedule
  (init_learning_rate, lr_decay_steps, lr_decay_rate), seed (weights init, data order),
  batch_size, bn_momentum, the augmentation sizes (what the targets look like), rehearsal_share
  (which rehearsal images join the data), color_jitter and degrade (what the pixels look like).
- ``input_size`` and ``backbone`` define the network and are always refused
  (``checkpoints.check_model_config``); there is no override.
- Everything else may change freely: max_steps (extend a run), save_checkpoint_steps,
  log_steps, max_to_keep, nb_workers, gpu_list, progress, training_data_path and rehearsal_data_path
  (the same data may sit elsewhere on another machine), annotation_format, strict, skip_unannotated, allow_empty,
  pretrained_model_path (ignored on resume), mixed_precision, suppress_warnings_and_error_messages,
  eval_core_thresh (an eval setting the next checkpoint records, not a training one).
"""
from __future__ import annotations

from typing import Callable

from checkpoints import CheckpointError

CHECKED = ("init_learning_rate", "lr_decay_steps", "lr_decay_rate", "seed", "batch_size", "bn_momentum",
           "max_image_large_side", "max_text_size", "min_text_size", "min_crop_side_ratio", "text_width_range",
           "text_height_range", "rehearsal_share", "color_jitter", "degrade")
STATE_KEY = "flags"
# CHECKED flags added after checkpoints began recording flags: a record without one was trained
# at this value (the flag's default), so a resume that sets another value is a change.
ADDED_LATER = {"color_jitter": 0.0, "degrade": 0.0}


class FlagChangeError(CheckpointError):
    """A resume changes a flag that the run's checkpoint fixes."""


def _as_json(value):
    """A flag value as it reads back from state.json (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def recorded(config) -> dict:
    """The ``CHECKED`` flags of a TrainConfig, for the checkpoint state."""
    return {name: _as_json(getattr(config, name)) for name in CHECKED}


def _saved_flags(state: dict) -> dict:
    """The recorded flags of a checkpoint state; states written before this module hold only
    seed and batch_size at the top level, and only those are compared; a record that lacks an
    ``ADDED_LATER`` flag was trained at its default."""
    saved = dict(state.get(STATE_KEY) or {})
    if saved:
        saved = {**ADDED_LATER, **saved}
    for name in ("seed", "batch_size"):
        if name not in saved and name in state:
            saved[name] = state[name]
    return saved


def check_resume(state: dict, config, where: str, report: Callable[[str], None]) -> None:
    """Refuse (or, with config.allow_flag_change, report) a change of a ``CHECKED`` flag.

    Args:
        state: the checkpoint's state dict (checkpoints.read_state).
        config: the TrainConfig asked for now (needs ``allow_flag_change``).
        where: the checkpoint, for the message.
        report: receives the line saying which flags change when they are allowed to.

    Raises:
        FlagChangeError: a flag differs and allow_flag_change is off.
    """
    saved = _saved_flags(state)
    now = recorded(config)
    changes = [(name, saved[name], now[name]) for name in CHECKED if name in saved and saved[name] != now[name]]
    if not changes:
        return
    listed = "; ".join(f"--{name} was {old!r}, now {new!r}" for name, old, new in changes)
    if not config.allow_flag_change:
        flags = " ".join(f"--{name}={old!r}" for name, old, _ in changes)
        raise FlagChangeError(f"resuming {where} with changed flags ({listed}); rerun with {flags}, or add "
                              f"--allow_flag_change to continue with the new values, or give another "
                              f"--checkpoint_path")
    report(f"continuing {where} with changed flags (--allow_flag_change): {listed}")
