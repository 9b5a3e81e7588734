"""Tests for batch_stream.py: batches are a pure function of (seed, step, slot), whatever the workers."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import batch_stream
from augmentation import AugmentConfig
from samples import DataError, Sample
from conftest import REPO_ROOT, session_members
from test_augmentation import marked_scene


@pytest.fixture
def small_dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    sample = marked_scene(folder)
    broken = Sample(str(folder / "gone.jpg"), None, np.zeros((0, 4, 2), np.float32), np.zeros(0, bool), (),
                       (100, 100))
    return [sample, broken, sample]


def test_make_batch_is_pure_and_skips_unreadable_images(small_dataset, caplog):
    config = AugmentConfig(input_size=64)
    images, targets = batch_stream.make_batch(small_dataset, 7, 3, 4, config)
    assert images.shape == (4, 64, 64, 3) and targets.shape == (4, 16, 16, 7)
    assert images.dtype == np.uint8 and targets.dtype == np.float32
    again_images, again_targets = batch_stream.make_batch(small_dataset, 7, 3, 4, config)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(targets, again_targets)
    assert not np.array_equal(images, batch_stream.make_batch(small_dataset, 7, 4, 4, config)[0])
    # Every third position of the epoch order hits the missing file; it is skipped, not fatal.
    for step in range(3):
        batch_stream.make_batch(small_dataset, 7, step, 4, config)
    assert "gone.jpg" in caplog.text


@pytest.mark.parametrize("nb_workers, shared_memory", [(1, True), (3, True), (2, False)])
def test_batch_stream_matches_make_batch_whatever_the_workers(small_dataset, nb_workers, shared_memory, monkeypatch):
    if not shared_memory:  # as where /dev/shm is too small: batches come back through pipes
        monkeypatch.setattr(batch_stream, "_shared_memory_fits", lambda nbytes: False)
    config = AugmentConfig(input_size=64)
    expected = [batch_stream.make_batch(small_dataset, 5, step, 2, config) for step in (10, 11, 12, 13)]
    with batch_stream.BatchStream(small_dataset, seed=5, start_step=10, batch_size=2, config=config,
                        nb_workers=nb_workers) as stream:
        got = [next(stream) for _ in expected[:2]]
        # take() and next() draw from one sequence; a lease is read in place, then given back.
        for want_step in (12, 13):
            with stream.take() as lease:
                assert lease.step == want_step and lease.shared == shared_memory
                got.append((lease.images.copy(), lease.targets.copy()))
    for (images, targets), (want_images, want_targets) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(targets, want_targets)


def test_a_held_batch_is_not_rewritten_while_the_stream_goes_on(small_dataset):
    """A lease views its shared block in place; the block returns to the workers only on release."""
    config = AugmentConfig(input_size=64)
    expected = [batch_stream.make_batch(small_dataset, 5, step, 2, config) for step in range(9)]
    # Two blocks: one being built, one the consumer may hold. A stream that rewrote blocks in
    # turn would have rebuilt the held one three times over by the end.
    with batch_stream.BatchStream(small_dataset, seed=5, batch_size=2, config=config, nb_workers=1, prefetch=1,
                                  leases=1) as stream:
        held = stream.take()
        assert held.shared and held.step == 0
        for step in range(1, 7):
            with stream.take() as lease:
                np.testing.assert_array_equal(lease.images, expected[step][0])
        np.testing.assert_array_equal(held.images, expected[0][0])
        np.testing.assert_array_equal(held.targets, expected[0][1])
        other = stream.take()
        with pytest.raises(RuntimeError, match="held"):  # every block held: nothing could be built
            stream.take()
        other.release()
        held.release()
        held.release()  # idempotent: the block is not given back twice
        assert held.images is None
        with stream.take() as lease:
            assert lease.step == 8
            np.testing.assert_array_equal(lease.targets, expected[8][1])


def test_batch_stream_reports_a_dataset_without_usable_images_and_stops_when_closed(small_dataset):
    with batch_stream.BatchStream(small_dataset[1:2], seed=0, batch_size=1, config=AugmentConfig(input_size=64),
                        nb_workers=1) as stream:
        with pytest.raises(DataError, match="no usable training example"):
            next(stream)
    stream = batch_stream.BatchStream(small_dataset, seed=0, batch_size=1, config=AugmentConfig(input_size=64), nb_workers=1)
    next(stream)
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)



def test_closing_the_stream_while_a_batch_is_held_keeps_it_readable(small_dataset):
    """A step may still read its batch when the loop stops (an exception, Ctrl-C): closing the
    stream unlinks the block's name but leaves the memory to the views of it."""
    config = AugmentConfig(input_size=64)
    stream = batch_stream.BatchStream(small_dataset, seed=5, batch_size=2, config=config, nb_workers=1)
    lease = stream.take()
    name = stream._blocks[0].memory.name
    stream.close()
    images, targets = batch_stream.make_batch(small_dataset, 5, 0, 2, config)
    np.testing.assert_array_equal(lease.images, images)
    np.testing.assert_array_equal(lease.targets, targets)
    lease.release()  # after close: nothing to give back to
    assert not os.path.exists(f"/dev/shm/{name.lstrip('/')}")

# Takes one batch from two workers, prints their number and the shared blocks' names, then SIGKILLs itself.
KILLED_CONSUMER = """
import multiprocessing, os, signal, sys
import numpy as np
import batch_stream
from augmentation import AugmentConfig
from samples import Sample
image = sys.argv[1]
sample = Sample(image, None, np.zeros((0, 4, 2), np.float32), np.zeros(0, bool), (), (360, 640))
stream = batch_stream.BatchStream([sample], seed=0, batch_size=1, config=AugmentConfig(input_size=64), nb_workers=2)
next(stream)
print(len(multiprocessing.active_children()), *(block.memory.name for block in stream._blocks), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
def test_workers_end_when_the_consumer_is_killed(small_dataset, tmp_path):
    # A SIGKILLed trainer sends no stop sentinel; its workers, the forkserver and the resource
    # tracker must still end (they hold the trainer's stdout/stderr, so a caller reading them hangs).
    with open(tmp_path / "out", "w") as out:
        process = subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, small_dataset[0].image_path],
                                   cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            assert process.wait(timeout=120) == -signal.SIGKILL, (tmp_path / "out").read_text()
            workers, *blocks = (tmp_path / "out").read_text().split()
            assert workers == "2" and blocks, (tmp_path / "out").read_text()
            deadline = time.monotonic() + 10
            while session_members(process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            survivors = session_members(process.pid)
        finally:
            if session_members(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
    assert survivors == []
    # The resource tracker, last to go, unlinked the shared blocks the dead trainer had created.
    assert [name for name in blocks if os.path.exists(f"/dev/shm/{name.lstrip('/')}")] == []


def test_batch_stream_in_process_is_a_generator_for_keras(small_dataset):
    import types

    stream = batch_stream.BatchStream(small_dataset, seed=0, batch_size=2, config=AugmentConfig(input_size=64),
                            nb_workers=0)
    generator = iter(stream)
    assert isinstance(generator, types.GeneratorType)
    images, targets = next(generator)
    np.testing.assert_array_equal(images, batch_stream.make_batch(small_dataset, 0, 0, 2, AugmentConfig(input_size=64))[0])
    stream.close()


def test_bad_batch_arguments_raise():
    with pytest.raises(ValueError, match="samples"):
        batch_stream.make_batch([], 0, 0, 2, AugmentConfig())
    with pytest.raises(ValueError, match="input_size"):
        AugmentConfig(input_size=30)



@pytest.mark.parametrize("nb_workers", [0, 1])
def test_worker_slices_put_together_are_the_global_batch(small_dataset, nb_workers):
    """Multi-machine training: each machine builds slots [start, stop) of every global batch."""
    config = AugmentConfig(input_size=64)
    whole = [batch_stream.make_batch(small_dataset, 5, step, 4, config) for step in (2, 3)]
    halves = []
    for slots in ((0, 2), (2, 4)):
        with batch_stream.BatchStream(small_dataset, seed=5, start_step=2, batch_size=4, config=config,
                                      nb_workers=nb_workers, slots=slots) as stream:
            halves.append([next(stream) for _ in whole])
    for index, (images, targets) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([half[index][0] for half in halves]), images)
        np.testing.assert_array_equal(np.concatenate([half[index][1] for half in halves]), targets)
    np.testing.assert_array_equal(batch_stream.make_batch(small_dataset, 5, 2, 4, config, slots=(1, 3))[0],
                                  whole[0][0][1:3])
    with pytest.raises(ValueError, match="slots"):
        batch_stream.make_batch(small_dataset, 5, 2, 4, config, slots=(3, 5))
