"""Export a trained EAST network to a TensorFlow SavedModel, TFLite or ONNX.

    python export.py --model_path DIR --output_dir DIR --format saved_model|tflite|onnx
                     [--quantize float16|int8 --calibration_data DIR]

The exported network takes ``input_image`` float32 (B, H, W, 3) RGB pixel values in
[0, 255] (it scales them itself, network_io.py), any batch and any H, W that are multiples of 32, and returns ``score_map`` (B, H/4, W/4, 1)
and ``geo_map`` (B, H/4, W/4, 5). Decoding and NMS stay in postprocess.py, so
``eval.py`` and ``serve.py`` score every format the same way (exported_models.py
loads them). The ecosystem's converters do the work: tf.saved_model, the TFLite
converter, tf2onnx, and onnxruntime's quantizer.

Output names in ``--output_dir``: ``saved_model/``, ``east.tflite``,
``east_float16.tflite``, ``east_int8.tflite``, ``east.onnx``, ``east_int8.onnx``. Each is
written to a temporary name and renamed into place. Beside each, ``<name>.inference.json``: the
checkpoint's recorded eval scale and core filter (inference_record.py), which eval.py and serve.py use
with the export as with the checkpoint.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

import exported_models
import inference_record
import path_guard
import postprocess

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("float16", "int8")
ONNX_OPSET = 17
CALIBRATION_MAX_IMAGES = 32
CALIBRATION_MAX_SIDE = 512
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ExportError(ValueError):
    """Bad export settings or a converter failure, with a message that says which."""


def output_name(export_format: str, quantize: str | None = None) -> str:
    """File or folder name export writes in the output folder, e.g. ``east_int8.tflite``."""
    if export_format == "saved_model":
        return "saved_model"
    suffix = exported_models.TFLITE_SUFFIX if export_format == "tflite" else exported_models.ONNX_SUFFIX
    return f"east{'_' + quantize if quantize else ''}{suffix}"


# --------------------------------------------------------------------------- graph


@functools.lru_cache(maxsize=None)
def _dynamic_upsampling_class():
    """A Keras layer for bilinear ×2 upsampling of unknown H, W (defined lazily: keeps import light)."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    @keras.saving.register_keras_serializable(package="east_export")
    class DynamicUpSampling2D(keras.layers.Layer):
        """``UpSampling2D(interpolation="bilinear")`` whose output size is computed in the graph.

        Keras' UpSampling2D needs static H and W; this computes ``tf.shape(x) * size`` so an
        exported graph accepts any input size. Same half-pixel bilinear resize, same numbers.

        Args:
            size: the integer upsampling factor of both sides.
        """

        def __init__(self, size: int = 2, **kwargs):
            super().__init__(**kwargs)
            self.size = int(size)

        def call(self, inputs):
            return tf.image.resize(inputs, tf.shape(inputs)[1:3] * self.size, method="bilinear")

        def compute_output_shape(self, input_shape):
            batch, height, width, channels = input_shape
            scale = (lambda side: None if side is None else side * self.size)
            return batch, scale(height), scale(width), channels

        def get_config(self):
            return {**super().get_config(), "size": self.size}

    return DynamicUpSampling2D


def make_shape_polymorphic(model):
    """A copy of an EAST Keras model that runs on any input H, W inside one graph.

    Clones the model with each bilinear ``UpSampling2D`` replaced by a layer that
    computes its output size at run time, then copies every layer's weights.

    Args:
        model: keras.Model from model.build_east / checkpoints.load_model_for_inference.

    Returns:
        keras.Model with the same input, outputs and weights.
    """
    import keras  # noqa: PLC0415

    upsampling_class = _dynamic_upsampling_class()

    def clone_layer(layer):
        if isinstance(layer, keras.layers.UpSampling2D):
            if layer.size[0] != layer.size[1] or layer.interpolation != "bilinear":
                raise ExportError(f"layer {layer.name}: only square bilinear upsampling is supported, "
                                  f"got size {layer.size}, {layer.interpolation}")
            return upsampling_class(layer.size[0], name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if layer.weights:
            clone.get_layer(layer.name).set_weights(layer.get_weights())
    return clone


def serving_module(model):
    """A tf.Module whose ``serve`` takes ``input_image`` (None, None, None, 3) and returns the two maps."""
    import tensorflow as tf  # noqa: PLC0415

    polymorphic = make_shape_polymorphic(model)
    spec = tf.TensorSpec([None, None, None, 3], tf.float32, name=exported_models.INPUT_NAME)

    class EastServing(tf.Module):
        def __init__(self):
            super().__init__(name="east_serving")
            self.model = polymorphic

        @tf.function(input_signature=[spec])
        def serve(self, input_image):
            score_map, geo_map = self.model(input_image, training=False)
            return {"score_map": score_map, "geo_map": geo_map}

    return EastServing()


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _atomic_output(destination: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``destination``; renames it into place when the block succeeds."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        staged = scratch / destination.name
        yield staged
        if not staged.exists():
            raise ExportError(f"{destination}: the converter wrote nothing")
        if staged.is_dir() and destination.is_dir():
            # A folder cannot be replaced in one rename: move the old one aside first.
            retired = scratch / (destination.name + ".old")
            os.replace(destination, retired)
        os.replace(staged, destination)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_calibration_images(folder: str | os.PathLike, *, max_images: int = CALIBRATION_MAX_IMAGES,
                            max_side_len: int = CALIBRATION_MAX_SIDE) -> list[np.ndarray]:
    """Network inputs for int8 calibration from the images of a folder.

    Args:
        folder: images (jpg, png, bmp, webp); sub-folders are not read.
        max_images: how many to use (sorted by name).
        max_side_len: each image's longer side is capped at this (px) before the
            multiple-of-32 resize, which keeps calibration fast.

    Returns:
        float32 (1, H, W, 3) arrays of RGB pixel values in [0, 255], resized as the Detector does.

    Raises:
        ExportError: no such folder, or no readable image in it.
    """
    import cv2  # noqa: PLC0415

    path = Path(folder)
    if not path.is_dir():
        raise ExportError(f"--calibration_data {folder}: no such folder")
    files = sorted(item for item in path.iterdir() if item.suffix.lower() in IMAGE_SUFFIXES)
    inputs = []
    for image_path in files[:max_images]:
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: cannot be read as an image; not used for calibration", image_path)
            continue
        resized, _ = postprocess.resize_for_inference(image[..., ::-1], max_side_len=max_side_len)
        inputs.append(resized[np.newaxis].astype(np.float32))
    if not inputs:
        raise ExportError(f"--calibration_data {folder}: no readable image ({', '.join(IMAGE_SUFFIXES)})")
    return inputs


def _save_module(module, path: Path) -> None:
    import tensorflow as tf  # noqa: PLC0415

    tf.saved_model.save(module, str(path), signatures={exported_models.SIGNATURE_KEY: module.serve})


def export_saved_model(model, destination: Path) -> Path:
    """Writes a SavedModel folder with the ``serving_default`` signature."""
    with _atomic_output(destination) as staged:
        _save_module(serving_module(model), staged)
    return destination


def frozen_serving_module(model):
    """Like ``serving_module`` but with the weights folded into the graph as constants.

    The TFLite converter reads a SavedModel of a Keras 3 model with its variables
    left uninitialized (NaN outputs, int8 calibration fails on READ_VARIABLE); a graph
    without variables converts cleanly and keeps the input and output names.
    """
    import tensorflow as tf  # noqa: PLC0415
    from tensorflow.python.framework.convert_to_constants import (  # noqa: PLC0415
        convert_variables_to_constants_v2)

    module = serving_module(model)
    frozen = convert_variables_to_constants_v2(module.serve.get_concrete_function())
    # Dict outputs are flattened in key order.
    output_keys = sorted(exported_models.OUTPUT_NAMES)
    spec = tf.TensorSpec([None, None, None, 3], tf.float32, name=exported_models.INPUT_NAME)

    class FrozenEastServing(tf.Module):
        def __init__(self):
            super().__init__(name="east_serving_frozen")
            self.frozen = frozen

        @tf.function(input_signature=[spec])
        def serve(self, input_image):
            return dict(zip(output_keys, self.frozen(input_image)))

    return FrozenEastServing()


def export_tflite(model, destination: Path, *, quantize: str | None = None,
                  calibration_images: Sequence[np.ndarray] | None = None) -> Path:
    """Writes a .tflite file (float32, float16 weights, or int8 with float input/output).

    int8 is post-training integer quantization calibrated on ``calibration_images``;
    input and output stay float32, so the loader and post-processing are unchanged.
    """
    import tensorflow as tf  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="east_export_") as scratch:
        saved_model = Path(scratch) / "saved_model"
        _save_module(frozen_serving_module(model), saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image] for image in calibration_images)
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError and plain RuntimeErrors
            raise ExportError(f"TFLite conversion failed: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'no detail'}") from error
    with _atomic_output(destination) as staged:
        staged.write_bytes(flatbuffer)
    return destination


class _CalibrationReader:
    """onnxruntime.quantization CalibrationDataReader over a list of network inputs."""

    def __init__(self, images: Sequence[np.ndarray]):
        self._images = iter(images)

    def get_next(self):
        image = next(self._images, None)
        return None if image is None else {exported_models.INPUT_NAME: image}


def _pixel_adapter_nodes(onnx_path: Path) -> list[str]:
    """Names of the ONNX nodes of model.PixelAdapter: int8 leaves them in float, so pixels are
    rounded once (at the first convolution's input), not after every step of their scaling."""
    import onnx  # noqa: PLC0415  (installed with tf2onnx)

    graph = onnx.load(str(onnx_path)).graph
    return [node.name for node in graph.node if "pixel_adapter" in node.name]


def export_onnx(model, destination: Path, *, quantize: str | None = None,
                calibration_images: Sequence[np.ndarray] | None = None, opset: int = ONNX_OPSET) -> Path:
    """Writes an .onnx file with tf2onnx; int8 is onnxruntime's static QDQ quantization."""
    import tensorflow as tf  # noqa: PLC0415

    tf2onnx = exported_models.require_optional("tf2onnx", "tf2onnx", "ONNX export")
    module = serving_module(model)
    with _atomic_output(destination) as staged:
        signature = [tf.TensorSpec([None, None, None, 3], tf.float32, name=exported_models.INPUT_NAME)]
        float_model = staged.with_name("float32.onnx") if quantize else staged
        tf2onnx.convert.from_function(module.serve, input_signature=signature, opset=opset,
                                      output_path=str(float_model))
        if quantize == "int8":
            quantization = exported_models.require_optional("onnxruntime.quantization", "onnxruntime",
                                                            "ONNX int8")
            quantization.quantize_static(
                str(float_model), str(staged), _CalibrationReader(calibration_images),
                quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                nodes_to_exclude=_pixel_adapter_nodes(float_model))
    return destination


def export_model(model, output_dir: str | os.PathLike, export_format: str, *, quantize: str | None = None,
                 calibration_images: Sequence[np.ndarray] | None = None, record: dict | None = None) -> Path:
    """Exports a Keras EAST model into ``output_dir``.

    Args:
        model: keras.Model (model.build_east or checkpoints.load_model_for_inference).
        output_dir: folder (created if missing); see ``output_name`` for what is written.
        export_format: one of EXPORT_FORMATS.
        quantize: None, "float16" (tflite) or "int8" (tflite, onnx).
        calibration_images: network inputs (load_calibration_images), required for int8.
        record: the checkpoint's eval settings (load_model_for_inference's info: max_side_len,
            core_thresh), written beside the export (inference_record.write_sidecar) so that eval.py and
            serve.py use them with it as with the checkpoint; None writes none.

    Returns:
        The path written (a folder for saved_model, a file otherwise).

    Raises:
        ExportError: bad settings or a converter failure.
        exported_models.MissingRuntimeError: tf2onnx / onnxruntime missing for ONNX.
    """
    if export_format not in EXPORT_FORMATS:
        raise ExportError(f"format must be one of {EXPORT_FORMATS}, got {export_format!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if quantize and export_format == "saved_model":
        raise ExportError("quantize applies to --format tflite or onnx, not saved_model")
    if quantize == "float16" and export_format == "onnx":
        # onnxruntime's float16 converter breaks tf2onnx's Resize nodes, and CPUs gain nothing from it.
        raise ExportError("float16 is for --format tflite; ONNX offers --quantize int8")
    if quantize == "int8" and not calibration_images:
        raise ExportError("int8 quantization needs calibration images (--calibration_data DIR)")
    destination = Path(output_dir) / output_name(export_format, quantize)
    start = time.perf_counter()
    if export_format == "saved_model":
        export_saved_model(model, destination)
    elif export_format == "tflite":
        export_tflite(model, destination, quantize=quantize, calibration_images=calibration_images)
    else:
        export_onnx(model, destination, quantize=quantize, calibration_images=calibration_images)
    if record is not None:
        inference_record.write_sidecar(record, destination)
    log.info("wrote %s in %.1f s", destination, time.perf_counter() - start)
    return destination


# --------------------------------------------------------------------------- CLI


def _define_flags(flags) -> None:
    flags.DEFINE_string("model_path", None, "checkpoint folder (its latest checkpoint) or one checkpoint file")
    flags.DEFINE_string("output_dir", None, "folder for the exported model (created if missing)")
    flags.DEFINE_enum("format", "saved_model", list(EXPORT_FORMATS), "export format")
    flags.DEFINE_enum("quantize", None, list(QUANTIZATIONS),
                      "float16 weights (tflite) or int8 (tflite, onnx; needs --calibration_data)")
    flags.DEFINE_string("calibration_data", None, "folder of images for int8 calibration")
    flags.DEFINE_integer("calibration_images", CALIBRATION_MAX_IMAGES, "how many calibration images to use")
    flags.DEFINE_boolean("overwrite", False, "replace an existing export of the same format in --output_dir")


def check_output(output_dir: str | os.PathLike, export_format: str, quantize: str | None, overwrite: bool) -> None:
    """ExportError when ``output_dir`` is a file, or already holds this export and not ``overwrite``."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ExportError(f"--output_dir {str(output_dir)!r} is a file, expected a folder")
    destination = output_dir / output_name(export_format, quantize)
    for path in (destination, inference_record.sidecar_path(destination)):
        if path.exists() and not overwrite:
            raise ExportError(f"{path} already exists; pass --overwrite to replace it, or give another "
                              f"--output_dir. Nothing was changed.")


def main(argv: Sequence[str]) -> None:
    from absl import flags  # noqa: PLC0415

    del argv
    config = flags.FLAGS
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not config.model_path or not config.output_dir:
            raise ExportError("--model_path and --output_dir are required")
        path_guard.check_outputs_apart({"--output_dir": config.output_dir},
                                       {"--model_path": config.model_path,
                                        "--calibration_data": config.calibration_data})
        check_output(config.output_dir, config.format, config.quantize, config.overwrite)
        calibration = None
        if config.calibration_data:
            calibration = load_calibration_images(config.calibration_data, max_images=config.calibration_images)
        import checkpoints  # noqa: PLC0415

        model, info = checkpoints.load_model_for_inference(config.model_path)
        written = export_model(model, config.output_dir, config.format, quantize=config.quantize,
                               calibration_images=calibration, record=info)
    except (ValueError, OSError, exported_models.MissingRuntimeError) as error:
        print(f"export.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(written)


if __name__ == "__main__":
    from absl import app, flags

    _define_flags(flags)
    app.run(main)
