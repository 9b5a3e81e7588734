"""What the EAST network expects and produces, said once; every other module imports it.

No TensorFlow or Keras here: plain constants (and numpy-free slices), so numpy-only modules
(geometry, augmentation, post-processing) and the Keras model read the same facts.

* Pixels: callers pass RGB pixel values (B, H, W, 3), uint8 or float in [0, 255]. The network
  converts them itself (model.PixelAdapter, its first layer) to what its backbone was trained
  on: the backbone's PIXEL_CONVENTIONS entry. Checkpoints written before the adapter existed
  use LEGACY_PIXEL_CONVENTION, ``pixel * PIXEL_SCALE + PIXEL_OFFSET`` = pixel / 127.5 - 1.
* Sizes: H and W are multiples of SIZE_MULTIPLE (the backbone halves the resolution 5 times).
* Outputs: maps at 1 / OUTPUT_STRIDE of the input size. The four distances of the geometry
  map are ``sigmoid * DISTANCE_SCALE`` input pixels, whatever the input size, so a model runs
  and fine-tunes at any input size (legacy checkpoints used their training input size).
* Training targets: float32 (B, H/4, W/4, TARGET_CHANNELS), channels laid out as the slices
  below: score, the 5 RBOX geometry channels (top, right, bottom, left distances in input px and
  the angle in radians; see geometry.make_rbox_targets), then the training mask.
"""
from __future__ import annotations

PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0
SIZE_MULTIPLE = 32
OUTPUT_STRIDE = 4
GEO_CHANNELS = 5
# Largest distance (input px) the geometry head can emit; EAST-tf2's text scale.
DISTANCE_SCALE = 512

# How each convention maps RGB pixels in [0, 255] to the backbone's input:
#   "unit_range": RGB, pixel / 127.5 - 1 (EAST-tf2's eval; keras 'tf' mode, MobileNetV2's ImageNet weights)
#   "caffe": BGR, pixel - CAFFE_BGR_MEAN (keras 'caffe' mode, ResNet50's ImageNet weights)
PIXEL_CONVENTION_NAMES = ("unit_range", "caffe")
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
PIXEL_CONVENTIONS = {"resnet50": "caffe", "mobilenetv2": "unit_range", "tiny": "unit_range"}
LEGACY_PIXEL_CONVENTION = "unit_range"

SCORE_SLICE = slice(0, 1)
GEO_SLICE = slice(1, 1 + GEO_CHANNELS)
MASK_SLICE = slice(1 + GEO_CHANNELS, 2 + GEO_CHANNELS)
TARGET_CHANNELS = 2 + GEO_CHANNELS  # score, geo, training mask
PREDICTION_CHANNELS = 1 + GEO_CHANNELS  # score, geo (the training model's packed output)
