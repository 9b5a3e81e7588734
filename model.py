"""EAST text detector in Keras 3 (``keras.ops`` only: runs under the TensorFlow and JAX backends).

Network (Zhou et al. 2017, as in EAST-tf2): a backbone gives features at strides 32, 16, 8
and 4; the merging branch upsamples ×2 (bilinear), concatenates the next finer feature and
applies a 1×1 then a 3×3 conv-BN-ReLU with 128, 64 and 32 channels; a last 3×3 conv with 32
channels feeds the heads:

* ``score_map``: float32 (B, H/4, W/4, 1), sigmoid, the probability that a pixel is text;
* ``geo_map``: float32 (B, H/4, W/4, 5), [top, right, bottom, left] distances in input pixels
  (sigmoid × distance_scale, network_io.DISTANCE_SCALE = 512 px) and the angle in radians
  ((sigmoid − 0.5) × π/2).

Input: RGB pixel values (B, H, W, 3), uint8 or float in [0, 255], H and W multiples of 32. The
first layer (PixelAdapter) converts them to the backbone's convention (network_io.py).
"""
from __future__ import annotations

import logging
import math
import os

import keras
from keras import layers, ops

import network_io
from network_io import GEO_CHANNELS, OUTPUT_STRIDE, SIZE_MULTIPLE  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

MERGE_CHANNELS = (128, 64, 32)
FINAL_CHANNELS = 32
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5
L2_WEIGHT = 1e-5

# Layer names of the features at strides 4, 8, 16, 32 (fine to coarse) for each backbone.
BACKBONE_TAPS = {
    "resnet50": ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
    # A light backbone for CPU demos; stride 32 is taken before MobileNetV2's 1280-channel
    # expansion, which would only add cost to the merging branch.
    "mobilenetv2": ("block_2_add", "block_5_add", "block_12_add", "block_16_project_BN"),
    # Five conv-BN-ReLU layers with no pretrained weights: for tests and smoke runs, where tracing
    # a real backbone's train step is most of the time (a 3-step train.py run at input 64:
    # 10.6 s against MobileNetV2's 21.9 s on 2 CPU cores).
    "tiny": ("tiny_stride4_relu", "tiny_stride8_relu", "tiny_stride16_relu", "tiny_stride32_relu"),
}
BACKBONES = tuple(BACKBONE_TAPS)
WEIGHT_CHOICES_HELP = "'imagenet', 'none' or the path of a local .h5 / .weights.h5 file"


class BackboneWeightsError(ValueError):
    """The backbone's pretrained weights could not be obtained (offline, bad file)."""


@keras.saving.register_keras_serializable(package="east")
class PixelAdapter(layers.Layer):
    """Maps RGB pixel values in [0, 255] to a backbone's input convention; no weights.

    "caffe": BGR minus CAFFE_BGR_MEAN (keras.applications.resnet50.preprocess_input);
    "unit_range": RGB pixel / 127.5 - 1 (mobilenet_v2.preprocess_input, and every checkpoint
    written before this layer existed). See network_io.py. The output is float32.

    Args:
        convention: one of network_io.PIXEL_CONVENTION_NAMES.
    """

    def __init__(self, convention: str = network_io.LEGACY_PIXEL_CONVENTION, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if convention not in network_io.PIXEL_CONVENTION_NAMES:
            raise ValueError(f"convention must be one of {network_io.PIXEL_CONVENTION_NAMES}, got {convention!r}")
        self.convention = convention

    def call(self, pixels):
        pixels = ops.cast(pixels, "float32")
        if self.convention == "caffe":
            # Channel slices rather than a reversed stride: every exporter converts them.
            bgr = ops.concatenate([pixels[..., 2:3], pixels[..., 1:2], pixels[..., 0:1]], axis=-1)
            return bgr - ops.convert_to_tensor(network_io.CAFFE_BGR_MEAN, "float32")
        return pixels * network_io.PIXEL_SCALE + network_io.PIXEL_OFFSET

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "convention": self.convention}


@keras.saving.register_keras_serializable(package="east")
class RboxOutputs(layers.Layer):
    """Turns the 6-channel head logits into ``(score_map, geo_map)``.

    Channel 0 → score (sigmoid); channels 1-4 → distances (sigmoid × ``distance_scale``
    pixels); channel 5 → angle ((sigmoid − 0.5) × π/2 radians). Outputs are float32 even under
    a mixed-precision policy, so the losses see full precision.

    Args:
        distance_scale: the largest distance the head can emit, in input pixels
            (network_io.DISTANCE_SCALE; legacy checkpoints used their training input size).
    """

    def __init__(self, distance_scale: int = network_io.DISTANCE_SCALE, **kwargs):
        kwargs.setdefault("dtype", "float32")
        legacy_input_size = kwargs.pop("input_size", None)  # the argument's name before DISTANCE_SCALE
        super().__init__(**kwargs)
        self.distance_scale = int(legacy_input_size if legacy_input_size is not None else distance_scale)
        if self.distance_scale <= 0:
            raise ValueError(f"distance_scale must be positive, got {self.distance_scale}")

    def call(self, logits):
        logits = ops.cast(logits, "float32")
        probabilities = ops.sigmoid(logits)
        score_map = probabilities[..., 0:1]
        distances = probabilities[..., 1:5] * float(self.distance_scale)
        angle = (probabilities[..., 5:6] - 0.5) * (math.pi / 2.0)
        return score_map, ops.concatenate([distances, angle], axis=-1)

    def compute_output_shape(self, input_shape):
        spatial = tuple(input_shape[:-1])
        return spatial + (1,), spatial + (GEO_CHANNELS,)

    def get_config(self):
        config = super().get_config()
        config.update({"distance_scale": self.distance_scale})
        return config


def conv_bn_relu(x, filters: int, kernel_size: int, name: str):
    """Conv (L2 1e-5, no bias: BN follows) → BatchNorm (momentum 0.997, eps 1e-5) → ReLU."""
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                      kernel_regularizer=keras.regularizers.L2(L2_WEIGHT), name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _resolve_weights(backbone_weights: str):
    """Map the --backbone_weights value to what keras.applications takes."""
    if backbone_weights is None or str(backbone_weights).lower() == "none":
        return None
    if backbone_weights == "imagenet":
        return "imagenet"
    if not os.path.isfile(backbone_weights):
        raise BackboneWeightsError(
            f"backbone_weights: no file at {backbone_weights!r}; expected {WEIGHT_CHOICES_HELP}")
    return backbone_weights


# (stride, channels) of the tiny backbone's stride-2 convs.
TINY_LEVELS = ((2, 8), (4, 16), (8, 16), (16, 32), (32, 32))


def tiny_backbone(image_input) -> keras.Model:
    """Five stride-2 3x3 conv-BN-ReLU layers (TINY_LEVELS); features named tiny_stride{N}_relu.

    Not a detector worth using on photos: a test and smoke-run stand-in whose train step traces
    and compiles in seconds. It has no pretrained weights."""
    x = image_input
    for stride, channels in TINY_LEVELS:
        x = layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False,
                          name=f"tiny_stride{stride}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"tiny_stride{stride}_bn")(x)
        x = layers.ReLU(name=f"tiny_stride{stride}_relu")(x)
    return keras.Model(image_input, x, name="tiny")


def _make_backbone(backbone: str, image_input, weights):
    """Build the backbone on ``image_input``; returns the keras Model."""
    if backbone == "tiny":
        if weights is not None:
            raise BackboneWeightsError("backbone 'tiny' has no pretrained weights; pass --backbone_weights none")
        return tiny_backbone(image_input)
    if backbone == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=weights,
                                           input_tensor=image_input, pooling=None)
    return keras.applications.MobileNetV2(include_top=False, weights=weights,
                                          input_tensor=image_input, pooling=None)


def _build_backbone(backbone: str, images, weights):
    """The keras.applications backbone on ``images``; download/file errors become BackboneWeightsError."""
    try:
        return _make_backbone(backbone, images, weights)
    except BackboneWeightsError:
        raise
    except Exception as error:  # download/HDF5 errors come as many types; report them as one
        if weights is None:
            raise
        where = "download the ImageNet weights" if weights == "imagenet" else f"load {weights!r}"
        raise BackboneWeightsError(
            f"could not {where} for backbone {backbone!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); pass "
            f"--backbone_weights none to start from random weights, or the path of a local "
            f".h5 file") from error


def build_east(input_size: int = 512, *, backbone: str = "resnet50", backbone_weights: str = "imagenet",
               distance_scale: int = network_io.DISTANCE_SCALE, pixel_convention: str | None = None) -> keras.Model:
    """Build the EAST network.

    Args:
        input_size: training input side in pixels (a multiple of 32); checked only: the
            network runs at any size that is a multiple of 32.
        backbone: one of ``BACKBONES``: "resnet50" (EAST-tf2), "mobilenetv2" (light, CPU) or
            "tiny" (five convs, random init only: tests and smoke runs).
        backbone_weights: "imagenet" (downloads once into ~/.keras/models), "none" (random
            init) or the path of a local weights file for the backbone.
        distance_scale: input px the distance head's sigmoid is scaled to (network_io.DISTANCE_SCALE;
            a legacy checkpoint's is its training input_size).
        pixel_convention: how PixelAdapter maps pixels for the backbone (network_io.PIXEL_CONVENTION_NAMES);
            None = the backbone's ImageNet convention (network_io.PIXEL_CONVENTIONS).

    Returns:
        keras.Model named "east": input (B, H, W, 3) RGB pixel values in [0, 255] (uint8 or float);
        outputs ``[score_map (B, H/4, W/4, 1), geo_map (B, H/4, W/4, 5)]`` float32.

    Raises:
        ValueError: bad ``input_size``, ``backbone``, ``distance_scale`` or ``pixel_convention``.
        BackboneWeightsError: the ImageNet weights cannot be downloaded or the file is unusable.
    """
    if not isinstance(input_size, int) or input_size <= 0 or input_size % SIZE_MULTIPLE:
        raise ValueError(f"input_size must be a positive multiple of {SIZE_MULTIPLE}, got {input_size!r}")
    if backbone not in BACKBONE_TAPS:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    weights = _resolve_weights(backbone_weights)
    convention = network_io.PIXEL_CONVENTIONS[backbone] if pixel_convention is None else pixel_convention

    image_input = keras.Input(shape=(None, None, 3), name="input_image")
    images = PixelAdapter(convention, name="pixel_adapter")(image_input)
    backbone_model = _build_backbone(backbone, images, weights)
    features = [backbone_model.get_layer(name).output for name in BACKBONE_TAPS[backbone]]
    stride4, stride8, stride16, stride32 = features
    x = stride32
    for level, (skip, channels) in enumerate(zip((stride16, stride8, stride4), MERGE_CHANNELS)):
        x = layers.UpSampling2D(size=2, interpolation="bilinear", name=f"merge{level}_up")(x)
        x = layers.Concatenate(axis=-1, name=f"merge{level}_concat")([x, skip])
        x = conv_bn_relu(x, channels, 1, name=f"merge{level}_1x1")
        x = conv_bn_relu(x, channels, 3, name=f"merge{level}_3x3")
    x = conv_bn_relu(x, FINAL_CHANNELS, 3, name="final_3x3")
    # One 1x1 conv for the 6 head channels is the same function as EAST-tf2's three 1x1
    # convs (score, distances, angle) and one kernel launch instead of three.
    logits = layers.Conv2D(1 + GEO_CHANNELS, 1, name="head_logits")(x)
    score_map, geo_map = RboxOutputs(distance_scale, name="rbox_outputs")(logits)
    return keras.Model(image_input, [score_map, geo_map], name="east")


def network_config(east: keras.Model) -> dict:
    """What a checkpoint must record to rebuild ``east`` exactly (beyond input_size and backbone).

    Returns:
        {"distance_scale": int px, "pixel_convention": str}, read from the model's layers.
    """
    return {"distance_scale": int(east.get_layer("rbox_outputs").distance_scale),
            "pixel_convention": east.get_layer("pixel_adapter").convention}


def training_model(east: keras.Model) -> keras.Model:
    """Wrap ``east`` for training: uint8 pixels in, one packed output.

    Input: uint8 (B, H, W, 3) RGB pixels, as ``data_preprocessor.make_batch`` gives them;
    ``east`` converts them on the device (its PixelAdapter), so the host copies and sends a
    quarter of the bytes a float32 batch would take.

    Output: float32 (B, H/4, W/4, 6) = concat(score_map, geo_map), what ``losses.east_loss``
    expects as ``y_pred`` and what ``model.compile``/``train_on_batch`` drive.

    The wrapper shares every layer and weight with ``east`` (checkpoints save ``east``).
    """
    pixels = keras.Input(shape=(None, None, 3), dtype="uint8", name="pixels")
    score_map, geo_map = east(pixels)
    packed = layers.Concatenate(axis=-1, name="score_geo", dtype="float32")([score_map, geo_map])
    return keras.Model(pixels, packed, name="east_train")
