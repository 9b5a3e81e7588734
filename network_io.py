"""What the EAST network expects and produces, said once; every other module imports it.

No TensorFlow or Keras here: plain constants (and numpy-free slices), so numpy-only modules
(geometry, augmentation, post-processing) and the Keras model read the same facts.

* Pixels: callers pass uint8 RGB (B, H, W, 3). The network maps them to its working range as
  ``pixel * PIXEL_SCALE + PIXEL_OFFSET`` = pixel / 127.5 - 1, i.e. [-1, 1].
* Sizes: H and W are multiples of SIZE_MULTIPLE (the backbone halves the resolution 5 times).
* Outputs: maps at 1 / OUTPUT_STRIDE of the input size.
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

SCORE_SLICE = slice(0, 1)
GEO_SLICE = slice(1, 1 + GEO_CHANNELS)
MASK_SLICE = slice(1 + GEO_CHANNELS, 2 + GEO_CHANNELS)
TARGET_CHANNELS = 2 + GEO_CHANNELS  # score, geo, training mask
PREDICTION_CHANNELS = 1 + GEO_CHANNELS  # score, geo (the training model's packed output)
