"""EAST text detector in Keras 3 (``keras.ops`` only: runs under the TensorFlow and JAX backends).

Network (Zhou et al. 2017, as in EAST-tf2): a backbone gives features at strides 32, 16, 8
and 4; the merging branch upsamples ×2 (bilinear), concatenates the next finer feature and
applies a 1×1 then a 3×3 conv-BN-ReLU with 128, 64 and 32 channels; a last 3×3 conv with 32
channels feeds the heads:

* ``score_map``: float32 (B, H/4, W/4, 1), sigmoid, the probability that a pixel is text;
* ``geo_map``: float32 (B, H/4, W/4, 5), [top, right, bottom, left] distances in input pixels
  (sigmoid × input_size) and the angle in radians ((sigmoid − 0.5) × π/2).

Input: float32 (B, H, W, 3) RGB scaled to [-1, 1] (pixel / 127.5 − 1), H and W multiples of 32.
"""
from __future__ import annotations

import logging
import math
import os

import keras
from keras import layers, ops

log = logging.getLogger(__name__)

OUTPUT_STRIDE = 4
MERGE_CHANNELS = (128, 64, 32)
FINAL_CHANNELS = 32
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5
L2_WEIGHT = 1e-5
GEO_CHANNELS = 5

# Layer names of the features at strides 4, 8, 16, 32 (fine to coarse) for each backbone.
BACKBONE_TAPS = {
    "resnet50": ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out"),
    # A light backbone for CPU demos; stride 32 is taken before MobileNetV2's 1280-channel
    # expansion, which would only add cost to the merging branch.
    "mobilenetv2": ("block_2_add", "block_5_add", "block_12_add", "block_16_project_BN"),
}
BACKBONES = tuple(BACKBONE_TAPS)
WEIGHT_CHOICES_HELP = "'imagenet', 'none' or the path of a local .h5 / .weights.h5 file"


class BackboneWeightsError(ValueError):
    """The backbone's pretrained weights could not be obtained (offline, bad file)."""


@keras.saving.register_keras_serializable(package="east")
class RboxOutputs(layers.Layer):
    """Turns the 6-channel head logits into ``(score_map, geo_map)``.

    Channel 0 → score (sigmoid); channels 1-4 → distances (sigmoid × ``input_size`` pixels);
    channel 5 → angle ((sigmoid − 0.5) × π/2 radians). Outputs are float32 even under a
    mixed-precision policy, so the losses see full precision.

    Args:
        input_size: training input side in pixels, the largest distance the head can emit.
    """

    def __init__(self, input_size: int = 512, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.input_size = int(input_size)

    def call(self, logits):
        logits = ops.cast(logits, "float32")
        probabilities = ops.sigmoid(logits)
        score_map = probabilities[..., 0:1]
        distances = probabilities[..., 1:5] * float(self.input_size)
        angle = (probabilities[..., 5:6] - 0.5) * (math.pi / 2.0)
        return score_map, ops.concatenate([distances, angle], axis=-1)

    def compute_output_shape(self, input_shape):
        spatial = tuple(input_shape[:-1])
        return spatial + (1,), spatial + (GEO_CHANNELS,)

    def get_config(self):
        config = super().get_config()
        config.update({"input_size": self.input_size})
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


def _make_backbone(backbone: str, image_input, weights):
    """Build the keras.applications backbone on ``image_input``; returns the keras Model."""
    if backbone == "resnet50":
        return keras.applications.ResNet50(include_top=False, weights=weights,
                                           input_tensor=image_input, pooling=None)
    return keras.applications.MobileNetV2(include_top=False, weights=weights,
                                          input_tensor=image_input, pooling=None)


def build_east(input_size: int = 512, *, backbone: str = "resnet50",
               backbone_weights: str = "imagenet") -> keras.Model:
    """Build the EAST network.

    Args:
        input_size: training input side in pixels (a multiple of 32); scales the distance
            head, so a model must be used with the input_size it was trained with.
        backbone: one of ``BACKBONES``: "resnet50" (EAST-tf2) or "mobilenetv2" (light, CPU).
        backbone_weights: "imagenet" (downloads once into ~/.keras/models), "none" (random
            init) or the path of a local weights file for the backbone.

    Returns:
        keras.Model named "east": input float32 (B, H, W, 3) in [-1, 1] RGB; outputs
        ``[score_map (B, H/4, W/4, 1), geo_map (B, H/4, W/4, 5)]`` float32.

    Raises:
        ValueError: bad ``input_size`` or ``backbone``.
        BackboneWeightsError: the ImageNet weights cannot be downloaded or the file is unusable.
    """
    if not isinstance(input_size, int) or input_size <= 0 or input_size % 32:
        raise ValueError(f"input_size must be a positive multiple of 32, got {input_size!r}")
    if backbone not in BACKBONE_TAPS:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    weights = _resolve_weights(backbone_weights)

    image_input = keras.Input(shape=(None, None, 3), name="input_image")
    try:
        backbone_model = _make_backbone(backbone, image_input, weights)
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
    score_map, geo_map = RboxOutputs(input_size, name="rbox_outputs")(logits)
    return keras.Model(image_input, [score_map, geo_map], name="east")


def training_model(east: keras.Model) -> keras.Model:
    """Wrap ``east`` for training: uint8 pixels in, one packed output.

    Input: uint8 (B, H, W, 3) RGB pixels, as ``data_preprocessor.make_batch`` gives them; the
    wrapper scales them to ``east``'s [-1, 1] (pixel / 127.5 - 1) on the device, so the host
    copies and sends a quarter of the bytes a float32 batch would take.

    Output: float32 (B, H/4, W/4, 6) = concat(score_map, geo_map), what ``losses.east_loss``
    expects as ``y_pred`` and what ``model.compile``/``train_on_batch`` drive.

    The wrapper shares every layer and weight with ``east`` (checkpoints save ``east``).
    """
    pixels = keras.Input(shape=(None, None, 3), dtype="uint8", name="pixels")
    images = layers.Rescaling(1.0 / 127.5, offset=-1.0, dtype="float32", name="to_unit_range")(pixels)
    score_map, geo_map = east(images)
    packed = layers.Concatenate(axis=-1, name="score_geo", dtype="float32")([score_map, geo_map])
    return keras.Model(pixels, packed, name="east_train")
