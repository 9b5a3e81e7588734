"""The eval settings a trained model carries with it: the scale its training implies and its core filter.

train.py writes the record into each checkpoint's state.json (key ``STATE_KEY``); export.py copies it
beside an exported model as ``<exported name>.inference.json`` (``sidecar_path``); eval.py and serve.py
fall back on it where they are not given a value (postprocess.settle_for_model). A record that is
missing, or a value out of range, reads as None: the flag's default then applies.

Record: {"max_side_len": int >= network_io.SIZE_MULTIPLE, px, or None;
         "core_thresh": float in [0, 1], or None}.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import atomic_io
from network_io import SIZE_MULTIPLE

STATE_KEY = "inference"
SIDECAR_SUFFIX = ".inference.json"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def max_side_len(record: dict | None) -> int | None:
    """The recorded eval max_side_len (px), or None."""
    value = (record or {}).get("max_side_len")
    return int(value) if _number(value) and value >= SIZE_MULTIPLE else None


def core_thresh(record: dict | None) -> float | None:
    """The recorded eval core_thresh, or None."""
    value = (record or {}).get("core_thresh")
    return float(value) if _number(value) and 0.0 <= value <= 1.0 else None


def as_info(record: dict | None) -> dict:
    """{"max_side_len": int or None, "core_thresh": float or None}, each validated."""
    return {"max_side_len": max_side_len(record), "core_thresh": core_thresh(record)}


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """Where an exported model's record lies: ``out/east.onnx`` -> ``out/east.onnx.inference.json``."""
    path = Path(model_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(record: dict, model_path: str | os.PathLike) -> Path:
    """Writes ``as_info(record)`` beside ``model_path`` (atomically); returns the file written."""
    path = sidecar_path(model_path)
    atomic_io.write_text_atomic(path, json.dumps(as_info(record), indent=2) + "\n")
    return path


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """``as_info`` of the record beside an exported model; {} when there is none.

    Raises:
        ValueError: the file exists but is not a JSON object (its path is named).
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable inference record ({error}); delete it to run without one") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a readable inference record (expected a JSON object); delete it to run "
                         f"without one")
    return as_info(record)
