#!/usr/bin/env python3
"""The whole training loop against the step alone, and where the host spends its time per batch.

    python bench/bench_train_e2e.py [--data DIR] [--json]

Figures, all from one run (TensorFlow backend unless KERAS_BACKEND says otherwise):

- loop: ``train.run_training`` itself (BatchStream over real photos, the compiled step, train_log.csv,
  TensorBoard, checkpoints at the default period of 50 steps), images/s over the steps after the
  first ``--warmup`` (tracing, worker start);
- step: the same compiled step alone on one random batch held in memory (bench_train.time_ours);
  loop / step says what the rest of the loop costs;
- host: the main process's time per batch at ``--host_batch_size`` (default 32) and ``--input_size``,
  from taking an already built batch from the stream until the backend holds it as its own array,
  the build in the workers excluded (the stream is given time to have the batch ready before each
  measurement): ``host_ms`` as train.py does it (``BatchStream.take``, in place, then
  ``train_step.as_backend_arrays``: a DLPack wrap under TensorFlow, ``jax.device_put`` + wait
  under JAX), with as many batches held as train.py holds; ``give_back_ms``, the release of the
  oldest held batch, which train.py does after starting the step; ``copying_host_ms`` the
  previous way (``next(stream)``'s copy, then ``tf.convert_to_tensor`` / ``jax.device_put``);
- stream: samples/s of BatchStream with 1, 2, ... ``--max_workers`` worker processes, taken in
  place as train.py takes them; with each, the cores its workers used (``stream_worker_cores``: CPU
  seconds / wall seconds, Linux) and the fraction of the machine's CPU busy meanwhile
  (``stream_cpu_busy``): workers that use fewer cores than there are workers while the machine is
  fully busy were short of cores (other processes), not of work.

``--data``: a folder of training photos with annotations (default ../shared/data/plates_dev, real
1280x720 and larger photos); where absent, 1280x720 scenes are generated (bench_pipeline.write_scenes).
Medians of ``--repeats`` measurements are printed (the machine may be shared); ``--json`` prints one
JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "plates_dev"


def time_loop(data: Path, checkpoint_path: Path, args) -> dict:
    """images/s of run_training after the warm-up steps, and its per-step times in ms."""
    import train

    stamps = []
    config = train.TrainConfig(
        training_data_path=str(data), checkpoint_path=str(checkpoint_path), input_size=args.input_size,
        batch_size=args.batch_size, nb_workers=args.nb_workers, backbone=args.backbone, backbone_weights="none",
        max_steps=args.steps, progress=False, bn_momentum=0.9)
    train.run_training(config, report=lambda line: None, on_step=lambda step: stamps.append(time.perf_counter()))
    timed = stamps[args.warmup:]
    step_ms = [1000 * (b - a) for a, b in zip(timed, timed[1:])]
    seconds = timed[-1] - timed[0]
    return {"images_per_s": round((len(timed) - 1) * args.batch_size / seconds, 2),
            "median_step_ms": round(statistics.median(step_ms), 1), "max_step_ms": round(max(step_ms), 1)}


def to_backend(images, targets):
    """The batch as the backend's own arrays, waited for (what the step's first op needs): the
    conversion train_step.TrainStepRunner.run makes (TensorFlow: no copy of a leased batch)."""
    import keras

    import train_step

    arrays = train_step.as_backend_arrays(images, targets)
    if keras.backend.backend() == "jax":
        import jax
        return jax.block_until_ready(arrays)
    return arrays


def copy_to_backend(images, targets):
    """The previous path, for comparison: the backend's own conversion of numpy arrays."""
    import keras

    if keras.backend.backend() == "jax":
        import jax
        return jax.block_until_ready((jax.device_put(images), jax.device_put(targets)))
    import tensorflow as tf
    return tf.convert_to_tensor(images), tf.convert_to_tensor(targets)


def time_host(samples, args) -> dict:
    """Median ms per batch on a ready batch, the stream held as train.train_loop holds it
    (STEPS_AHEAD batches held when the next is taken): ``host_ms`` from stream.take() until the
    backend holds the arrays, ``give_back_ms`` for releasing the oldest held batch (which requests
    the next build; the loop does it after starting the step), and ``copying_host_ms`` for the
    previous path: next(stream), a copy, then the backend's own conversion (TensorFlow copies again)."""
    import collections

    import data_preprocessor as dp
    import train

    config = dp.AugmentConfig(input_size=args.input_size)
    workers = 2
    take_ms, convert_ms, give_back_ms, copy_ms = [], [], [], []
    held = collections.deque()
    with dp.BatchStream(samples, seed=0, batch_size=args.host_batch_size, config=config,
                        nb_workers=workers, leases=train.STEPS_AHEAD) as stream:
        started = time.perf_counter()
        for _ in range(2):
            next(stream)
        build_s = (time.perf_counter() - started) / 2
        for _ in range(train.STEPS_AHEAD):  # the first conversion starts the backend up
            lease = stream.take()
            held.append((lease, to_backend(lease.images, lease.targets)))
        for _ in range(args.repeats):
            time.sleep(1.5 * build_s)  # the next batch is built by now: only the main process's work is timed
            started = time.perf_counter()
            lease = stream.take()
            taken = time.perf_counter()
            arrays = to_backend(lease.images, lease.targets)
            done = time.perf_counter()
            held.append((lease, arrays))
            del arrays
            oldest, _ = held.popleft()  # its step is over: nothing reads its block any more
            oldest.release()
            take_ms.append(1000 * (taken - started))
            convert_ms.append(1000 * (done - taken))
            give_back_ms.append(1000 * (time.perf_counter() - done))
            time.sleep(1.5 * build_s)
            started = time.perf_counter()
            copied = copy_to_backend(*next(stream))
            copy_ms.append(1000 * (time.perf_counter() - started))
            del copied
        held.clear()
    take, convert = statistics.median(take_ms), statistics.median(convert_ms)
    return {"batch": args.host_batch_size, "input_size": args.input_size, "take_ms": round(take, 2),
            "to_backend_ms": round(convert, 2), "host_ms": round(take + convert, 2),
            "give_back_ms": round(statistics.median(give_back_ms), 2),
            "copying_host_ms": round(statistics.median(copy_ms), 2),
            "batch_build_s_2_workers": round(build_s, 2)}


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux), to say how busy it was."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [int(value) for value in handle.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def workers_cpu_s() -> float | None:
    """CPU seconds (user + system) used so far by this process's live worker processes (Linux)."""
    import multiprocessing

    total = 0
    try:
        for process in multiprocessing.active_children():
            with open(f"/proc/{process.pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def time_stream(samples, args) -> dict:
    """Per worker count: median samples/s of BatchStream at stream_batch_size, taken as
    train.train_loop takes them (in place, given back at once); the cores the workers used
    (their CPU seconds / wall seconds) and the fraction of the machine's CPU busy meanwhile."""
    import data_preprocessor as dp

    config = dp.AugmentConfig(input_size=args.input_size)
    result = {"samples_per_s": {}, "worker_cores": {}, "cpu_busy": {}}
    for workers in range(1, args.max_workers + 1):
        measured = []
        with dp.BatchStream(samples, seed=0, batch_size=args.stream_batch_size, config=config,
                            nb_workers=workers) as stream:
            for _ in range(workers):  # warm-up: worker start, first imports
                stream.take().release()
            ticks, cpu_s, started_all = cpu_ticks(), workers_cpu_s(), time.perf_counter()
            for _ in range(args.repeats):
                started = time.perf_counter()
                for _ in range(args.stream_batches):
                    stream.take().release()
                measured.append(args.stream_batches * args.stream_batch_size / (time.perf_counter() - started))
            wall_s, ticks_after, cpu_s_after = time.perf_counter() - started_all, cpu_ticks(), workers_cpu_s()
        result["samples_per_s"][workers] = round(statistics.median(measured), 2)
        if cpu_s is not None and cpu_s_after is not None:
            result["worker_cores"][workers] = round((cpu_s_after - cpu_s) / wall_s, 2)
        if ticks and ticks_after and ticks_after[1] > ticks[1]:
            result["cpu_busy"][workers] = round((ticks_after[0] - ticks[0]) / (ticks_after[1] - ticks[1]), 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--input_size", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8, help="batch of the loop and step figures")
    parser.add_argument("--steps", type=int, default=60, help="loop steps (a checkpoint at 50)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--nb_workers", type=int, default=2, help="data workers of the loop")
    parser.add_argument("--host_batch_size", type=int, default=32)
    parser.add_argument("--stream_batch_size", type=int, default=8)
    parser.add_argument("--stream_batches", type=int, default=16, help="batches per stream measurement")
    parser.add_argument("--max_workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: loop,step,host,stream")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import data_preprocessor as dp
    import keras

    result = {"backend": keras.backend.backend(), "cpu_count": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench_train_e2e_") as tmp:
        data = args.data
        if not data.is_dir():
            import bench_pipeline
            data = Path(tmp) / "scenes"
            data.mkdir()
            bench_pipeline.write_scenes(data, 48)
        result["data"] = str(data)
        samples = dp.load_dataset(data, "auto").samples
        if "stream" not in skip:
            stream = time_stream(samples, args)
            for key, value in stream.items():
                result[f"stream_{key}"] = value
            rates = result["stream_samples_per_s"]
            if 2 in rates:
                result["stream_2_over_1"] = round(rates[2] / rates[1], 2)
        if "host" not in skip:
            result["host"] = time_host(samples, args)
        if "step" not in skip:
            import bench_train
            result["step"] = bench_train.time_ours(args.batch_size, args.input_size, 10, 3, args.backbone)
        if "loop" not in skip:
            result["loop"] = time_loop(data, Path(tmp) / "run", args)
        if "loop" in result and "step" in result:
            result["loop_over_step"] = round(result["loop"]["images_per_s"] / result["step"]["images_per_s"], 3)
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
