"""Training-step throughput of our EAST (one compiled step, one forward pass) on random data.

CPU (default; TensorFlow backend), optionally against EAST-tf2's step in the same run:

    python bench/bench_train.py [--reference_repo .ref/EAST-tf2] [--json]

EAST-tf2's step is timed as its train.py runs it: ``train_step`` (eager GradientTape) and
then the second forward pass + loss it does for printing. Its model asks for ImageNet
weights; the bench builds it with random weights instead (patched here, in this process only).
CPU mode also times one forward pass of ours and counts its FLOPs, and prints each step in
forward passes and both steps' arithmetic rate (GFLOP/s).

GPU (any backend; made for KERAS_BACKEND=jax on a machine without TensorFlow):

    KERAS_BACKEND=jax python bench/bench_train.py --batch_sizes 32,64,128 \\
        --mixed_precision both --steps 30 [--json]

prints a table of images/s for float32 and mixed_bfloat16 per batch size. ``--json`` prints
one JSON line last.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def random_batch(batch_size: int, input_size: int, seed: int = 0):
    """uint8 RGB images (what make_batch gives train.py) and packed targets (B, S/4, S/4, 7)
    with ~20% positive pixels."""
    rng = np.random.default_rng(seed)
    map_size = input_size // 4
    images = rng.integers(0, 256, (batch_size, input_size, input_size, 3), dtype=np.uint8)
    targets = np.zeros((batch_size, map_size, map_size, 7), np.float32)
    targets[..., 0] = rng.random((batch_size, map_size, map_size)) > 0.8
    targets[..., 1:5] = rng.random((batch_size, map_size, map_size, 4)) * 64
    targets[..., 5] = (rng.random((batch_size, map_size, map_size)) - 0.5) * np.pi / 2
    targets[..., 6] = 1.0
    return images, targets


def time_ours(batch_size: int, input_size: int, steps: int, warmup: int, backbone: str,
              policy: str = "float32", on_device: bool = False, forward: bool = False) -> dict:
    """images/s of our compiled train step as train.py runs it (train_step.TrainStepRunner:
    model.training_model + losses.east_loss, no host wait between steps).

    ``on_device``: under JAX, put the batch on the accelerator once (as the PyTorch anchor
    does) instead of sending it from host memory every step. ``forward``: also time one
    training-mode forward pass, the unit of the step's arithmetic.
    """
    import keras

    import losses
    import model as east_model
    from train_step import TrainStepRunner

    keras.mixed_precision.set_global_policy(policy)
    try:
        network = east_model.build_east(input_size, backbone=backbone, backbone_weights="none")
        trainer = east_model.training_model(network)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-4), loss=losses.east_loss,
                        metrics=[losses.score_loss, losses.geo_loss])
        images, targets = random_batch(batch_size, input_size)
        if on_device and keras.backend.backend() == "jax":
            import jax
            images, targets = jax.device_put(images), jax.device_put(targets)
        runner = TrainStepRunner(trainer)
        for _ in range(warmup):
            logs = runner.run(images, targets)
        TrainStepRunner.to_floats(logs)
        started = time.perf_counter()
        for _ in range(steps):
            logs = runner.run(images, targets)
        logs = TrainStepRunner.to_floats(logs)  # waits for the last step, hence for all of them
        elapsed = (time.perf_counter() - started) / steps
        runner.sync()
        forward_ms = _time_forward(trainer, images, steps) * 1000 if forward else None
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if not np.isfinite(logs["loss"]):
        raise FloatingPointError(f"loss is {logs['loss']}")
    result = {"batch": batch_size, "policy": policy, "step_ms": round(elapsed * 1000, 2),
              "images_per_s": round(batch_size / elapsed, 2)}
    if forward_ms is not None:
        result["forward_ms"] = round(forward_ms, 2)
        result["step_over_forward"] = round(elapsed * 1000 / forward_ms, 2)
    return result


def forward_gflop(backbone: str, batch_size: int, input_size: int) -> float:
    """GFLOP of one forward pass of our network (TensorFlow's graph profiler; TF backend only).

    EAST-tf2's network is the same one, so the same count applies to its forward passes; a
    train step is about three (forward, then two convolutions per convolution backward).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    import model as east_model

    network = east_model.build_east(input_size, backbone=backbone, backbone_weights="none")
    forward = tf.function(lambda batch: network(batch, training=False))
    concrete = forward.get_concrete_function(tf.TensorSpec([batch_size, input_size, input_size, 3]))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = convert_variables_to_constants_v2(concrete).graph
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops / 1e9


def _time_forward(trainer, images, repeats: int) -> float:
    """Seconds of one compiled training-mode forward pass (BatchNorm on batch statistics)."""
    import keras

    call = _compiled_forward(trainer)
    keras.ops.convert_to_numpy(call(images))
    started = time.perf_counter()
    for _ in range(repeats):
        keras.ops.convert_to_numpy(call(images))
    return (time.perf_counter() - started) / repeats


def _compiled_forward(trainer):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.function(lambda batch: trainer(batch, training=True))
    if keras.backend.backend() == "jax":
        import jax
        trainable = [variable.value for variable in trainer.trainable_variables]
        non_trainable = [variable.value for variable in trainer.non_trainable_variables]
        return jax.jit(lambda batch: trainer.stateless_call(trainable, non_trainable, batch, training=True)[0])
    return lambda batch: trainer(batch, training=True)


def _import_from(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"reference_{name}", path / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_reference(repo: Path, batch_size: int, input_size: int, steps: int, warmup: int) -> dict:
    """images/s of EAST-tf2's per-step work (train_step + second forward + loss), eager."""
    import tensorflow as tf

    import postprocess

    original_resnet = tf.keras.applications.ResNet50

    def resnet_without_download(*args, **kwargs):
        kwargs["weights"] = None
        return original_resnet(*args, **kwargs)

    tf.keras.applications.ResNet50 = resnet_without_download
    try:
        reference_model = _import_from(repo, "model")
        reference_losses = _import_from(repo, "losses")
        east = reference_model.EAST_model(input_size)
    finally:
        tf.keras.applications.ResNet50 = original_resnet
    optimizer = tf.optimizers.Adam(1e-4)
    images, targets = random_batch(batch_size, input_size)
    images = tf.constant(postprocess.normalize_image(images))  # EAST-tf2 takes [-1, 1] floats
    score_true, geo_true, mask = (tf.constant(targets[..., 0:1]), tf.constant(targets[..., 1:6]),
                                  tf.constant(targets[..., 6:7]))
    ones = tf.ones_like(mask)
    loss_weight, small_text_weight = tf.Variable(0.01), tf.Variable(0.0)

    def one_step():
        # As EAST-tf2's train.py: its masks are (small-text mask, boundary mask); ours is one.
        with tf.GradientTape() as tape:
            score_pred, geo_pred = east(images)
            loss = (reference_losses.dice_loss(ones, mask, loss_weight, small_text_weight, score_true, score_pred)
                    + reference_losses.rbox_loss(ones, mask, small_text_weight, score_true, geo_true, geo_pred))
        gradients = tape.gradient(loss, east.trainable_variables)
        optimizer.apply_gradients(zip(gradients, east.trainable_variables))
        score_pred, geo_pred = east(images)  # the second forward pass it runs to print losses
        loss = (reference_losses.dice_loss(ones, mask, loss_weight, small_text_weight, score_true, score_pred)
                + reference_losses.rbox_loss(ones, mask, small_text_weight, score_true, geo_true, geo_pred))
        return float(loss)

    for _ in range(warmup):
        one_step()
    started = time.perf_counter()
    for _ in range(steps):
        one_step()
    elapsed = (time.perf_counter() - started) / steps
    return {"batch": batch_size, "step_ms": round(elapsed * 1000, 2),
            "images_per_s": round(batch_size / elapsed, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input_size", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8, help="CPU mode batch size")
    parser.add_argument("--batch_sizes", default="", help="GPU mode: comma-separated batch sizes")
    parser.add_argument("--mixed_precision", choices=("off", "on", "both"), default="off",
                        help="GPU mode: float32 (off), mixed_bfloat16 (on) or both")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--host_batches", action="store_true",
                        help="GPU mode: send the batch from host memory every step, as training does")
    parser.add_argument("--reference_repo", default="", help="checkout of solaris33/EAST-tf2")
    parser.add_argument("--backend-agnostic", dest="backend_agnostic", action="store_true",
                        help="do not require the TensorFlow backend (CPU mode)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    backend = keras.backend.backend()
    result = {"backend": backend, "input_size": args.input_size, "backbone": args.backbone}
    if args.batch_sizes:
        policies = {"off": ["float32"], "on": ["mixed_bfloat16"], "both": ["float32", "mixed_bfloat16"]}
        rows = []
        for batch_size in (int(item) for item in args.batch_sizes.split(",")):
            for policy in policies[args.mixed_precision]:
                row = time_ours(batch_size, args.input_size, args.steps, args.warmup, args.backbone,
                                policy, on_device=not args.host_batches)
                rows.append(row)
                print(f"{backend:>10} batch {batch_size:4d} {policy:>15}: {row['images_per_s']:9.1f} images/s "
                      f"({row['step_ms']:.1f} ms/step)", flush=True)
        result["runs"] = rows
        result["device"] = _device_name(backend)
    else:
        if backend != "tensorflow" and not args.backend_agnostic:
            print("CPU mode compares against EAST-tf2 on TensorFlow; set KERAS_BACKEND=tensorflow "
                  "or pass --backend-agnostic", file=sys.stderr)
            return 2
        ours = time_ours(args.batch_size, args.input_size, args.steps, args.warmup, args.backbone,
                         forward=True)
        result["ours"] = ours
        print(f"ours      ({backend}, compiled step): {ours['images_per_s']:.2f} images/s "
              f"({ours['step_ms']:.0f} ms/step, batch {args.batch_size}, {args.input_size}px)", flush=True)
        gflop = forward_gflop(args.backbone, args.batch_size, args.input_size)
        result["forward_gflop"] = round(gflop, 1)
        print(f"ours      one training-mode forward pass: {ours['forward_ms']:.0f} ms "
              f"({gflop:.1f} GFLOP, {gflop / ours['forward_ms'] * 1000:.0f} GFLOP/s); "
              f"step = {ours['step_over_forward']:.2f} forward passes", flush=True)
        if args.reference_repo:
            reference = time_reference(Path(args.reference_repo), args.batch_size, args.input_size,
                                       args.steps, args.warmup)
            result["reference"] = reference
            result["ratio"] = round(ours["images_per_s"] / reference["images_per_s"], 3)
            print(f"EAST-tf2  (eager step + 2nd forward): {reference['images_per_s']:.2f} images/s "
                  f"({reference['step_ms']:.0f} ms/step)")
            print(f"ratio ours / EAST-tf2: {result['ratio']:.2f}x")
            result["reference_step_over_our_forward"] = round(reference["step_ms"] / ours["forward_ms"], 2)
            print(f"EAST-tf2's step = {result['reference_step_over_our_forward']:.2f} of our forward "
                  f"passes; 2x would need our step at "
                  f"{result['reference_step_over_our_forward'] / 2:.2f}")
            print(f"arithmetic rate, counting a step as 3 forward passes (ours) and 4 (EAST-tf2): "
                  f"ours {3 * gflop / ours['step_ms'] * 1000:.0f} GFLOP/s, EAST-tf2 "
                  f"{4 * gflop / reference['step_ms'] * 1000:.0f} GFLOP/s")
    if args.json:
        print(json.dumps(result))
    return 0


def _device_name(backend: str) -> str:
    if backend == "jax":
        import jax
        return str(jax.devices()[0].device_kind)
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    return backend


if __name__ == "__main__":
    sys.exit(main())
