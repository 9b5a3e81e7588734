"""Training batches as a pure function of (seed, step, slot), built in parallel worker processes.

``make_batch`` builds one step's batch here; ``BatchStream`` gives the batches of consecutive
steps, built by worker processes that write them into shared memory (a batch of 32 at 512 px is
40 MB; sending it through a pipe, or copying it, would cost the consumer more than the step can
spare). ``BatchStream.take`` lends a batch in place until released; ``next(stream)`` copies it.
Batch k is identical whatever the number of workers, so a resumed run sees the batches an
uninterrupted run sees.

Targets are laid out as ``network_io`` says: float32 (B, S/4, S/4, TARGET_CHANNELS), channels
SCORE_SLICE, GEO_SLICE, MASK_SLICE.
"""
from __future__ import annotations

import collections
import ctypes
import functools
import itertools
import logging
import math
import multiprocessing
import os
import shutil
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import connection, shared_memory
from typing import Iterator, Sequence

import cv2
import numpy as np

import network_io
from annotation_loaders import Problem
from augmentation import MAX_DRAWS_PER_SLOT, AugmentConfig, try_example, write_rgb
from samples import DataError, Sample

log = logging.getLogger(__name__)

__all__ = ["BatchStream", "LeasedBatch", "make_batch"]


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, count]).permutation(count)


def _slot_range(batch_size: int, slots: tuple[int, int] | None) -> range:
    """The slots of the global batch built here: all of them, or [start, stop) (one worker's slice)."""
    if slots is None:
        return range(batch_size)
    start, stop = (int(value) for value in slots)
    if not 0 <= start < stop <= batch_size:
        raise ValueError(f"slots must be (start, stop) with 0 <= start < stop <= batch_size {batch_size}, "
                         f"got {slots}")
    return range(start, stop)


def _batch_shapes(batch_size: int, config: AugmentConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    map_size = config.input_size // network_io.OUTPUT_STRIDE
    return ((batch_size, config.input_size, config.input_size, 3),
            (batch_size, map_size, map_size, network_io.TARGET_CHANNELS))


def _batch_layout(batch_size: int, config: AugmentConfig) -> tuple[int, int]:
    """(offset of the targets, total bytes) of one batch in a shared block: uint8 images, padded
    to 64 bytes so that the float32 targets after them are aligned."""
    images_shape, targets_shape = _batch_shapes(batch_size, config)
    targets_offset = -(-math.prod(images_shape) // 64) * 64
    return targets_offset, targets_offset + math.prod(targets_shape) * 4


def _build_batch(samples: Sequence[Sample], seed: int, step: int, batch_size: int, config: AugmentConfig,
                 out: tuple[np.ndarray, np.ndarray] | None = None, slots: tuple[int, int] | None = None):
    """(images, targets, problems) for one step's slots (default all), written into out when
    given; row i holds slot slots[0] + i. See make_batch."""
    count = len(samples)
    slot_range = _slot_range(batch_size, slots)
    if out is None:
        images_shape, targets_shape = _batch_shapes(len(slot_range), config)
        out = np.empty(images_shape, np.uint8), np.empty(targets_shape, np.float32)
    images, targets = out
    problems = []
    for row, slot in enumerate(slot_range):
        # Each image once per epoch, in a seeded order; retries draw from the slot's own generator.
        position = step * batch_size + slot
        index = int(_epoch_order(seed, position // count, count)[position % count])
        rng = np.random.default_rng([seed, step, slot])
        for _ in range(MAX_DRAWS_PER_SLOT):
            try:
                example = try_example(samples[index], rng, config)
            except DataError as error:
                problems.append(Problem(samples[index].image_path, None, str(error)))
                example = None
            if example is not None:
                break
            index = int(rng.integers(count))
        else:
            raise DataError(f"no usable training example after {MAX_DRAWS_PER_SLOT} draws for step {step}, "
                            f"slot {slot}" + (f"; last problem: {problems[-1]}" if problems else ""))
        write_rgb(example["image_bgr"], images[row])
        targets[row, ..., network_io.SCORE_SLICE] = example["score_map"]
        targets[row, ..., network_io.GEO_SLICE] = example["geo_map"]
        targets[row, ..., network_io.MASK_SLICE] = example["training_mask"]
    return images, targets, problems


def make_batch(samples: Sequence[Sample], seed: int, step: int, batch_size: int,
               config: AugmentConfig = AugmentConfig(),
               slots: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of one global step: a pure function of (seed, step, slot), no hidden state.

    Slot i of step s takes image number ``s * batch_size + i`` of a seeded per-epoch permutation
    and augments it with ``np.random.default_rng([seed, s, i])``; an unreadable image or a failed
    crop moves on to another image drawn from that same generator (logged, not fatal).
    ``slots=(start, stop)`` builds only those slots of the global batch of ``batch_size`` (one
    worker's slice in multi-machine training); the rows equal those of the whole batch.

    Returns:
        images uint8 (B, S, S, 3) (B = stop - start with slots) RGB pixels (a quarter of float32's bytes to copy and send to
        the device; ``model.training_model`` scales them to [-1, 1] there); targets float32
        (B, S/4, S/4, 7):
        [0] score_map, [1:6] geo_map (top, right, bottom, left px, angle rad), [6] training_mask.

    Raises:
        ValueError: empty samples or batch_size < 1. DataError: a slot found no usable image.
    """
    _check_batch_args(samples, batch_size)
    images, targets, problems = _build_batch(samples, seed, step, batch_size, config, slots=slots)
    for problem in problems:
        log.warning("skipped while building step %d: %s", step, problem)
    return images, targets


def _check_batch_args(samples, batch_size):
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class _SharedMemory(shared_memory.SharedMemory):
    """SharedMemory whose close() leaves the mapping to the arrays that still view it.

    Batches are handed out as views of their block (``_SharedBatch.arrays``, which hold a buffer
    export), and a tensor made from one without a copy keeps that view alive; closing the stream
    before they are gone must neither fail nor unmap memory they read. mmap refuses to close
    while exported (BufferError); the mapping then goes with the last view, when the mmap
    object is freed.
    """

    def close(self) -> None:
        try:
            super().close()
        except BufferError:
            pass


class _SharedBatch:
    """A batch-sized block of shared memory: a worker writes a batch into it, the consumer reads it in place.

    Sending a batch of 32 at 512 px (40 MB) back through a Pool's pipe, or even copying it once
    in the consumer, costs more than the consumer can spare; through shared memory only the list
    of problems travels.
    """

    def __init__(self, batch_size: int, config: AugmentConfig, name: str | None = None):
        self.shapes = _batch_shapes(batch_size, config)
        self.targets_offset, self.nbytes = _batch_layout(batch_size, config)
        self.memory = (_SharedMemory(create=True, size=self.nbytes) if name is None
                       else _SharedMemory(name=name))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, targets) viewing the block. They reach it through a ctypes view, which holds
        a buffer export for as long as any of them lives: numpy alone keeps only a reference to
        the mapping, and SharedMemory.close() would unmap memory they still view (a segfault)."""
        block = (ctypes.c_ubyte * self.nbytes).from_buffer(self.memory.buf)
        return (np.ndarray(self.shapes[0], np.uint8, buffer=block),
                np.ndarray(self.shapes[1], np.float32, buffer=block, offset=self.targets_offset))

    def release(self, unlink: bool) -> None:
        if unlink:
            self.memory.unlink()
        self.memory.close()


class LeasedBatch:
    """One step's batch on loan from a BatchStream (``BatchStream.take``), read in place.

    ``images`` uint8 (B, S, S, 3) and ``targets`` float32 (B, S/4, S/4, 7) (as make_batch
    returns them) view the shared block a worker built them in: nothing writes that block until
    ``release()`` (or the end of a ``with`` block) gives it back to the workers. After that, the
    arrays, and anything made from them without a copy (``train_step.as_backend_arrays``), must
    not be read again: release only once the step that used them has finished
    (``TrainStepRunner.wait``). Without shared memory (nb_workers=0, or /dev/shm too small) the
    arrays are the batch's own and release() does nothing. release() is idempotent and drops
    ``images`` and ``targets``.

    Attributes:
        step: the global step this batch belongs to.
        shared: whether the arrays view a shared block (released: rewritten by a worker).
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, step: int, on_release=None):
        self.images, self.targets, self.step = images, targets, step
        self.shared = on_release is not None
        self._on_release = on_release

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        self.images = self.targets = None
        if on_release is not None:
            on_release()

    def __enter__(self) -> "LeasedBatch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


_WORKER_STATE: dict = {}


def _init_worker(samples, seed, batch_size, config, slots=None):
    # Ctrl-C in a terminal reaches the whole process group: the parent stops the stream (and
    # so the workers); a worker that raised KeyboardInterrupt would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One OpenCV thread per worker process: the parallelism comes from the processes.
    cv2.setNumThreads(1)
    _exit_with_parent()
    _WORKER_STATE.update(samples=samples, seed=seed, batch_size=batch_size, config=config, slots=slots, blocks={})


def _exit_with_parent() -> None:
    """Ends this worker as soon as the process that started it ends, however it ends.

    After a SIGKILL of the trainer nothing sends the workers their stop sentinel, and each worker
    holds the write end of its own task queue, the forkserver's "alive" pipe and the resource
    tracker's pipe: without this, workers, forkserver and tracker all wait on each other forever
    (holding the trainer's stdout/stderr). multiprocessing's parent sentinel (a pipe end on POSIX,
    a process handle on Windows) becomes ready when the parent ends; a daemon thread waits on it.
    Exiting without cleanup is right here: the parent owns the shared blocks, and the resource
    tracker unlinks them once every process holding its pipe is gone.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch():
        connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_batch(step: int, block_name: str | None):
    """Builds one step's batch: into the shared block block_name, returning the problems met, or
    (block_name None) returning (images, targets, problems)."""
    state = _WORKER_STATE
    arguments = (state["samples"], state["seed"], step, state["batch_size"], state["config"])
    if block_name is None:
        return _build_batch(*arguments, slots=state["slots"])
    block = state["blocks"].get(block_name)
    if block is None:
        rows = len(_slot_range(state["batch_size"], state["slots"]))
        block = state["blocks"][block_name] = _SharedBatch(rows, state["config"], block_name)
    images, targets = block.arrays()
    try:
        return _build_batch(*arguments, out=(images, targets), slots=state["slots"])[2]
    finally:
        del images, targets  # no view may outlive the call, or the block cannot be closed


def _shared_memory_fits(nbytes: int) -> bool:
    """Whether /dev/shm (64 MB in some containers) has room: writing past it kills the writer with SIGBUS."""
    try:
        return shutil.disk_usage("/dev/shm").free > 1.25 * nbytes
    except OSError:
        return os.name == "nt"


class BatchStream:
    """Endless ordered batches for steps start_step, start_step + 1, ... built by worker processes.

    Batch k equals ``make_batch(samples, seed, start_step + k, batch_size, config, slots)`` whatever
    nb_workers is, so a run resumed at step S sees the batches an uninterrupted run sees.

    Two ways to take batches, in step order from one sequence:

    * ``take()`` lends the next batch without copying it (``LeasedBatch``): its arrays view the
      shared block the worker wrote, and that block goes back to the workers only when the lease
      is released. The stream owns ``prefetch + leases`` blocks; each is either being built,
      built and waiting, or held by the consumer, never two at once, so a block cannot be
      rewritten while the consumer holds it. Holding more than ``leases`` batches leaves fewer
      builds in flight; holding every block makes ``take()`` raise instead of waiting forever.
      The training loop holds each batch until its step has run (train.train_loop).
    * ``next(stream)``, ``for images, targets in stream`` or ``model.fit(iter(stream), ...)``
      (``iter(stream)`` is a plain Python generator of (x, y), which Keras 3 accepts on every
      backend) give the batch's own copy of the arrays: one copy per batch, nothing to release.

    Close it (or use ``with``) to stop the workers. One consumer thread.

    Args:
        samples: from load_dataset.
        seed, start_step, batch_size, config: see make_batch.
        nb_workers: worker processes; 0 builds batches in this process (at take()).
        prefetch: batches being built or built ahead of the consumer (default 2 * nb_workers).
        leases: batches the consumer may hold while ``prefetch`` builds stay in flight (default 2).
        mp_context: multiprocessing start method; default "forkserver" where available (safe with
            TensorFlow/JAX threads in the parent), else "spawn".
        slots: (start, stop): build only those slots of each global batch of batch_size (this
            machine's slice in multi-worker training, see distribute.py); None = all.

    Attributes:
        skipped: collections.Counter of "file: reason" -> how many times it was skipped.
    """

    def __init__(self, samples: Sequence[Sample], *, seed: int, start_step: int = 0, batch_size: int,
                 config: AugmentConfig = AugmentConfig(), nb_workers: int = 4, prefetch: int | None = None,
                 leases: int = 2, mp_context: str | None = None, slots: tuple[int, int] | None = None):
        _check_batch_args(samples, batch_size)
        self._slots = None if slots is None else tuple(int(value) for value in slots)
        self._rows = len(_slot_range(batch_size, self._slots))
        if nb_workers < 0:
            raise ValueError(f"nb_workers must be >= 0, got {nb_workers}")
        if leases < 0:
            raise ValueError(f"leases must be >= 0, got {leases}")
        self._samples = list(samples)
        self._seed, self._batch_size, self._config = int(seed), int(batch_size), config
        self._nb_workers, self._leases = nb_workers, leases
        self._prefetch = max(1, prefetch if prefetch is not None else 2 * nb_workers)
        if mp_context is None:
            mp_context = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._mp_context = mp_context
        self._executor = None
        self._closed = False
        self._steps = itertools.count(int(start_step))
        self._blocks: list[_SharedBatch] = []  # all of them; each is free, pending or held
        self._free: collections.deque[_SharedBatch] = collections.deque()
        self._pending: collections.deque = collections.deque()  # (block or None, step, future), in step order
        self.skipped: collections.Counter = collections.Counter()

    def _record(self, problems):
        for problem in problems:
            key = str(problem)
            if key not in self.skipped:
                log.warning("skipped: %s", key)
            self.skipped[key] += 1

    def take(self) -> LeasedBatch:
        """The next step's batch, lent without a copy; release it once nothing reads it any more.

        Raises:
            DataError: a slot found no usable image (the stream is then closed).
            RuntimeError: the stream is closed, or every shared block is held by the consumer.
        """
        if self._closed:
            raise RuntimeError("take() on a closed BatchStream")
        if self._nb_workers == 0:
            step = next(self._steps)
            images, targets, problems = _build_batch(self._samples, self._seed, step, self._batch_size, self._config,
                                                     slots=self._slots)
            self._record(problems)
            return LeasedBatch(images, targets, step)
        if self._executor is None:
            self._start_workers()
        if not self._pending:
            raise RuntimeError(f"all {len(self._blocks)} shared batches are held by the consumer: release one "
                               f"before taking another (or raise leases)")
        block, step, future = self._pending.popleft()
        try:
            result = future.result()
        except BaseException:
            self.close()
            raise
        if block is None:
            images, targets, problems = result
            lease = LeasedBatch(images, targets, step)
        else:
            problems = result
            lease = LeasedBatch(*block.arrays(), step, functools.partial(self._give_back, block))
        self._record(problems)
        self._submit()
        return lease

    def _start_workers(self) -> None:
        block_nbytes = _batch_layout(self._rows, self._config)[1]
        count = self._prefetch + self._leases
        if _shared_memory_fits(count * block_nbytes):
            self._blocks = [_SharedBatch(self._rows, self._config) for _ in range(count)]
            self._free.extend(self._blocks)
        else:
            log.info("not enough room in /dev/shm for %d batches; workers send batches through pipes", count)
        self._executor = ProcessPoolExecutor(
            self._nb_workers, mp_context=multiprocessing.get_context(self._mp_context), initializer=_init_worker,
            initargs=(self._samples, self._seed, self._batch_size, self._config, self._slots))
        self._submit()

    def _submit(self) -> None:
        """Keeps ``prefetch`` builds in flight, each into a free block (through a pipe without shared memory)."""
        while len(self._pending) < self._prefetch and (self._free or not self._blocks):
            block = self._free.popleft() if self._blocks else None
            step = next(self._steps)
            self._pending.append(
                (block, step, self._executor.submit(_worker_batch, step, block and block.memory.name)))

    def _give_back(self, block: _SharedBatch) -> None:
        if not self._closed:
            self._free.append(block)
            self._submit()

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            try:
                yield next(self)
            except StopIteration:
                return

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch as arrays of its own (a copy where take() would lend a shared block)."""
        if self._closed:
            raise StopIteration
        with self.take() as lease:
            if lease.shared:
                return lease.images.copy(), lease.targets.copy()
            return lease.images, lease.targets

    def close(self) -> None:
        """Stops the worker processes and frees the shared memory (idempotent); the stream then ends."""
        self._closed = True
        executor, self._executor = getattr(self, "_executor", None), None
        if executor is not None:
            # Waits for the batches being built (they write into the shared blocks), drops the rest.
            executor.shutdown(wait=True, cancel_futures=True)
        blocks, self._blocks = getattr(self, "_blocks", []), []
        self._free, self._pending = collections.deque(), collections.deque()
        for block in blocks:
            block.release(unlink=True)

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn down multiprocessing
            pass
