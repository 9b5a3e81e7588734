"""Load an EAST network in any of its formats behind one batch function.

    predict = load_predictor("checkpoints/plates")        # Keras checkpoint (checkpoints.py)
    predict = load_predictor("exported/saved_model")      # TensorFlow SavedModel folder
    predict = load_predictor("exported/east.tflite")      # TFLite (LiteRT) flatbuffer
    predict = load_predictor("exported/east.onnx")        # ONNX, run by onnxruntime
    score_map, geo_map = predict(images)                  # images uint8 (B, H, W, 3) RGB pixels

Every format takes RGB pixel values (B, H, W, 3), uint8 or float in [0, 255], with H, W
multiples of 32 (network_io.py; the network scales pixels itself), and returns numpy float32
``score_map`` (B, H/4, W/4, 1) and ``geo_map`` (B, H/4, W/4, 5), so decoding and NMS
(postprocess.Detector) stay the same for all of them. Exported files are written by export.py,
whose input is named ``input_image`` (float32 pixel values) and outputs ``score_map`` and
``geo_map``. Files exported before the network took pixels expected [-1, 1]: export them again
from their checkpoint.

Heavy runtimes are imported only when their format is loaded: ``onnxruntime`` for
.onnx, ``ai_edge_litert`` (or TensorFlow's deprecated ``tf.lite``) for .tflite.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np

import inference_record
from network_io import SIZE_MULTIPLE

log = logging.getLogger(__name__)

FORMATS = ("keras", "saved_model", "tflite", "onnx")
INPUT_NAME = "input_image"
OUTPUT_NAMES = ("score_map", "geo_map")
SIGNATURE_KEY = "serving_default"
SAVED_MODEL_FILE = "saved_model.pb"
TFLITE_SUFFIX = ".tflite"
ONNX_SUFFIX = ".onnx"


class MissingRuntimeError(ImportError):
    """The optional package that runs a model format is not installed."""


def detect_format(model_path: str | os.PathLike) -> str:
    """Which of FORMATS ``model_path`` holds, from its name and contents.

    ``.tflite`` and ``.onnx`` files go by suffix, a folder with ``saved_model.pb``
    is a SavedModel; anything else is left to ``checkpoints.load_model_for_inference``.

    Raises:
        ValueError: ``model_path`` does not exist.
    """
    path = Path(model_path)
    if not path.exists():
        raise ValueError(f"model_path {str(model_path)!r}: no such file or folder")
    suffix = path.suffix.lower()
    if path.is_file() and suffix == TFLITE_SUFFIX:
        return "tflite"
    if path.is_file() and suffix == ONNX_SUFFIX:
        return "onnx"
    if path.is_dir() and (path / SAVED_MODEL_FILE).is_file():
        return "saved_model"
    return "keras"


def require_optional(module: str, package: str, purpose: str):
    """Import ``module`` or raise MissingRuntimeError with the one pip line that fixes it."""
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingRuntimeError(
            f"{purpose} needs the optional package {package!r} (pip install {package}); "
            f"import {module!r} failed: {error}") from error


def _check_images(images) -> np.ndarray:
    """float32 (B, H, W, 3) pixel values from uint8 or float pixels; refuses what a network cannot take."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {images.shape}")
    if images.shape[1] % SIZE_MULTIPLE or images.shape[2] % SIZE_MULTIPLE or not images.shape[1] \
            or not images.shape[2]:
        raise ValueError(f"images' H and W must be positive multiples of {SIZE_MULTIPLE}, got {images.shape[1:3]}")
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.size and images.min() < 0:
        raise ValueError(f"images must be RGB pixel values in [0, 255], got a minimum of {images.min():.3f}; "
                         f"pass the pixels themselves (the network scales them), not pixel / 127.5 - 1")
    return images


class Predictor:
    """A loaded network as a batch function, ``predict(images) -> (score_map, geo_map)``.

    Attributes:
        format: one of FORMATS.
        model_path: what was loaded.
        info: a dict for summaries ({"format", "model_path", ...}, plus what
            checkpoints.load_model_for_inference reports for Keras checkpoints, or the recorded
            max_side_len and core_thresh export.py wrote beside an exported model, inference_record.py).
    """

    def __init__(self, run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], model_format: str,
                 model_path: str, info: dict | None = None):
        self._run = run
        # onnxruntime sessions are thread-safe, TFLite interpreters and the per-shape
        # trace cache are not: one lock keeps a served model safe under a threaded server.
        self._lock = threading.Lock()
        self._owner = None  # keeps a loaded SavedModel alive with its signature
        self.format = model_format
        self.model_path = model_path
        self.info = {"format": model_format, "model_path": model_path, **(info or {})}

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Runs the network.

        Args:
            images: uint8 or float (B, H, W, 3) RGB pixel values in [0, 255]; H, W multiples of 32.

        Returns:
            score_map float32 (B, H/4, W/4, 1), geo_map float32 (B, H/4, W/4, 5).
        """
        images = _check_images(images)
        with self._lock:
            score_map, geo_map = self._run(images)
        return np.asarray(score_map, dtype=np.float32), np.asarray(geo_map, dtype=np.float32)

    def __repr__(self) -> str:
        return f"Predictor(format={self.format!r}, model_path={self.model_path!r})"


# --------------------------------------------------------------------------- formats


# Batches with more pixels than this (B * H * W) skip the eager first call (see keras_batch_function).
EAGER_MAX_PIXELS = 1024 * 1024


def keras_batch_function(model) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A Keras EAST model as a batch function (TensorFlow graph per input shape).

    model.py's bilinear UpSampling2D needs static spatial sizes, so the graph is
    traced once per input shape. A trace costs a few network calls, so the first
    batch of a small shape runs eagerly and the graph is built when the shape comes
    again. A large input goes through the graph at once: an eager Keras call keeps
    every layer's output alive until it returns (MobileNetV2 EAST at 2400x1792:
    8.6 GB peak eagerly, 1.6 GB in the graph, whose executor frees each tensor
    after its last use).
    """
    import keras  # noqa: PLC0415

    if keras.backend.backend() != "tensorflow":
        def run_other(images):
            return tuple(np.asarray(output) for output in model.predict_on_batch(images))
        return run_other

    import tensorflow as tf  # noqa: PLC0415

    forward = tf.function(lambda images: model(images, training=False))
    calls_per_shape: dict[tuple, int] = {}

    def run(images):
        calls_per_shape[images.shape] = calls_per_shape.get(images.shape, 0) + 1
        tensor = tf.convert_to_tensor(images)
        eager = calls_per_shape[images.shape] == 1 and images.shape[0] * images.shape[1] * images.shape[2] <= \
            EAGER_MAX_PIXELS
        outputs = model(tensor, training=False) if eager else forward(tensor)
        return tuple(np.asarray(output) for output in outputs)

    return run


def _load_keras(model_path: str) -> Predictor:
    import checkpoints  # noqa: PLC0415  (TensorFlow; only when a checkpoint is loaded)

    model, info = checkpoints.load_model_for_inference(model_path)
    return Predictor(keras_batch_function(model), "keras", model_path, dict(info))


def _load_saved_model(model_path: str) -> Predictor:
    import tensorflow as tf  # noqa: PLC0415

    loaded = tf.saved_model.load(model_path)
    signature = loaded.signatures.get(SIGNATURE_KEY)
    if signature is None:
        raise ValueError(f"{model_path}: SavedModel has no {SIGNATURE_KEY!r} signature "
                         f"(has {sorted(loaded.signatures)}); export it with export.py")
    outputs = set(signature.structured_outputs)
    if not set(OUTPUT_NAMES) <= outputs:
        raise ValueError(f"{model_path}: SavedModel outputs are {sorted(outputs)}, expected {list(OUTPUT_NAMES)}")

    def run(images):
        result = signature(**{INPUT_NAME: tf.convert_to_tensor(images)})
        return result["score_map"].numpy(), result["geo_map"].numpy()

    predictor = Predictor(run, "saved_model", model_path, {"signature": SIGNATURE_KEY})
    predictor._owner = loaded
    return predictor


def _tflite_interpreter_class():
    """LiteRT's Interpreter, else TensorFlow's deprecated tf.lite.Interpreter."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
        return Interpreter
    except ImportError:
        pass
    try:
        import warnings  # noqa: PLC0415

        import tensorflow as tf  # noqa: PLC0415
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter
    except (ImportError, AttributeError) as error:
        raise MissingRuntimeError("running a .tflite model needs 'ai-edge-litert' (pip install ai-edge-litert) "
                                  f"or a TensorFlow with tf.lite: {error}") from error


def _load_tflite(model_path: str, num_threads: int | None) -> Predictor:
    interpreter_class = _tflite_interpreter_class()
    try:
        import warnings  # noqa: PLC0415
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = interpreter_class(model_path=model_path, num_threads=num_threads or os.cpu_count())
    except ValueError as error:
        raise ValueError(f"{model_path}: not a readable TFLite model ({error})") from error
    signatures = interpreter.get_signature_list()
    if SIGNATURE_KEY not in signatures:
        raise ValueError(f"{model_path}: TFLite model has no {SIGNATURE_KEY!r} signature "
                         f"(has {sorted(signatures)}); export it with export.py")
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)

    def run(images):
        # The runner resizes and re-allocates its tensors when the input shape changes.
        result = runner(**{INPUT_NAME: images})
        return result["score_map"].copy(), result["geo_map"].copy()

    return Predictor(run, "tflite", model_path, {"runtime": interpreter_class.__module__.split(".")[0]})


def _load_onnx(model_path: str, num_threads: int | None) -> Predictor:
    onnxruntime = require_optional("onnxruntime", "onnxruntime", "running a .onnx model")
    options = onnxruntime.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(model_path, sess_options=options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ValueError(f"{model_path}: onnxruntime cannot load it ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else 'no detail'})") from error
    output_names = [output.name for output in session.get_outputs()]
    input_names = [tensor.name for tensor in session.get_inputs()]
    if input_names != [INPUT_NAME] or not set(OUTPUT_NAMES) <= set(output_names):
        raise ValueError(f"{model_path}: ONNX inputs {input_names} / outputs {output_names}, expected "
                         f"[{INPUT_NAME!r}] / {list(OUTPUT_NAMES)}; export it with export.py")

    def run(images):
        score_map, geo_map = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        return score_map, geo_map

    return Predictor(run, "onnx", model_path, {"runtime": f"onnxruntime {onnxruntime.__version__}"})


def load_predictor(model_path: str | os.PathLike, *, num_threads: int | None = None) -> Predictor:
    """Loads a network in any format as ``predict(images) -> (score_map, geo_map)``.

    Args:
        model_path: a Keras checkpoint folder or file (checkpoints.py), a SavedModel
            folder, a ``.tflite`` file or an ``.onnx`` file (the last three from export.py).
        num_threads: CPU threads for TFLite and onnxruntime (default: all cores).

    Returns:
        A Predictor: call it with uint8 (or float 0..255) RGB pixels (B, H, W, 3), H and W
        multiples of 32; it returns numpy score_map (B, H/4, W/4, 1) and geo_map (B, H/4, W/4, 5).
        ``.info`` describes the model for summaries.

    Raises:
        ValueError: the path does not exist or is not a usable model.
        MissingRuntimeError: the optional runtime for the format is not installed.
    """
    model_path = str(model_path)
    model_format = detect_format(model_path)
    log.info("loading %s model from %s", model_format, model_path)
    if model_format == "keras":
        return _load_keras(model_path)
    record = inference_record.read_sidecar(model_path)  # before the slow load: a bad file fails first
    if model_format == "tflite":
        predictor = _load_tflite(model_path, num_threads)
    elif model_format == "onnx":
        predictor = _load_onnx(model_path, num_threads)
    else:
        predictor = _load_saved_model(model_path)
    predictor.info.update(record)
    return predictor
