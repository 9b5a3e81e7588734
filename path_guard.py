"""Inputs are never outputs: every command that writes checks its output paths against its input paths.

One rule for eval.py, export.py, train.py, data_preprocessor.py split and demo.py's fine-tune: an
output path that is an input path, lies inside one, or holds one is refused before anything is
written. Paths are compared after resolving them (relative paths, ``..``, symlinks), and where both
exist also by file identity (a bind mount or a hard-linked folder names the same directory twice).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


class PathOverlapError(ValueError):
    """An output path is, holds or lies inside an input path."""


def _resolved_chain(path: Path) -> list[Path]:
    """``path`` resolved, followed by its parents (nearest first)."""
    resolved = path.resolve()
    return [resolved, *resolved.parents]


def _same(first: Path, second: Path) -> bool:
    if first == second:
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _inside_or_same(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies somewhere below it (after resolving both)."""
    outer_resolved = outer.resolve()
    return any(_same(ancestor, outer_resolved) for ancestor in _resolved_chain(inner))


def overlap(output: str | os.PathLike, source: str | os.PathLike) -> str | None:
    """How ``output`` and ``source`` overlap: "is the same path as", "lies inside", "holds", or None when apart."""
    output, source = Path(output), Path(source)
    if _inside_or_same(output, source):
        return "is the same path as" if _same(output.resolve(), source.resolve()) else "lies inside"
    if _inside_or_same(source, output):
        return "holds"
    return None


def check_outputs_apart(outputs: Mapping[str, str | os.PathLike | None],
                        inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse output paths that are, hold or lie inside an input path.

    Args:
        outputs: what the command writes, by the name the user knows it under
            (``{"--output_dir": "out"}``); None values are skipped.
        inputs: what it reads (data, ground truth, model), named the same way.

    Raises:
        PathOverlapError: one line naming both paths; nothing has been written.
    """
    for output_name, output in outputs.items():
        for input_name, source in inputs.items():
            if output is None or source is None or str(source) == "" or str(output) == "":
                continue
            relation = overlap(output, source)
            if relation is not None:
                resolved = [Path(output).resolve(), Path(source).resolve()]
                shown = "" if [str(output), str(source)] == [str(path) for path in resolved] else \
                    f" (resolved: {resolved[0]} and {resolved[1]})"
                raise PathOverlapError(
                    f"{output_name} {str(output)!r} {relation} {input_name} {str(source)!r}{shown}; a command "
                    f"never writes into its inputs. Nothing was written: choose an output outside the inputs.")
