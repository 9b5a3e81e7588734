"""OpenCV's dnn module (where most people run EAST) reads export.py's ONNX file and computes the
Keras model's maps, score and geometry both, on a plain random-weight model."""
import importlib

import cv2
import numpy as np
import pytest


@pytest.mark.slow
def test_opencv_dnn_matches_keras_on_both_maps(tmp_path):
    pytest.importorskip("tf2onnx")
    import keras

    import model as east_model

    export = importlib.import_module("export")
    keras.utils.set_random_seed(0)
    network = east_model.build_east(64, backbone="mobilenetv2", backbone_weights="none")
    written = export.export_model(network, tmp_path, "onnx")
    images = np.random.default_rng(1).uniform(-1, 1, (1, 96, 64, 3)).astype(np.float32)
    keras_score, keras_geo = (np.asarray(output) for output in network(images, training=False))
    net = cv2.dnn.readNetFromONNX(str(written))
    net.setInput(images)
    names = net.getUnconnectedOutLayersNames()
    outputs = dict(zip(names, net.forward(names)))
    print(f"OpenCV dnn vs Keras: score max |diff| {np.abs(outputs['score_map'] - keras_score).max():.3g}, "
          f"geometry max |diff| {np.abs(outputs['geo_map'] - keras_geo).max():.3g}")
    np.testing.assert_allclose(outputs["score_map"], keras_score, atol=1e-3)
    np.testing.assert_allclose(outputs["geo_map"], keras_geo, atol=0.05)  # distances in px, angle in rad
