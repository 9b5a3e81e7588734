"""inference_record.py: the eval settings a model carries, in a checkpoint's state and beside an export."""
import json

import pytest

import inference_record


def test_values_are_validated_and_missing_ones_read_as_none():
    assert inference_record.as_info({"max_side_len": 320, "core_thresh": 0.75}) == {
        "max_side_len": 320, "core_thresh": 0.75}
    assert inference_record.as_info(None) == inference_record.as_info({}) == {"max_side_len": None,
                                                                               "core_thresh": None}
    # Out of range, or not a number (JSON true is not 1): the flag's default applies instead.
    assert inference_record.as_info({"max_side_len": 16, "core_thresh": 1.5}) == {"max_side_len": None,
                                                                                  "core_thresh": None}
    assert inference_record.as_info({"max_side_len": True, "core_thresh": "0.5"}) == {"max_side_len": None,
                                                                                      "core_thresh": None}
    assert inference_record.core_thresh({"core_thresh": 0}) == 0.0


def test_sidecar_round_trip_beside_a_file_and_a_folder(tmp_path):
    model_file, model_folder = tmp_path / "east.onnx", tmp_path / "saved_model"
    assert inference_record.sidecar_path(model_file) == tmp_path / "east.onnx.inference.json"
    assert inference_record.sidecar_path(f"{model_folder}/") == tmp_path / "saved_model.inference.json"
    assert inference_record.read_sidecar(model_file) == {}  # none written: no record
    written = inference_record.write_sidecar({"max_side_len": 384, "core_thresh": 0.0, "step": 9}, model_file)
    assert json.loads(written.read_text()) == {"max_side_len": 384, "core_thresh": 0.0}
    assert inference_record.read_sidecar(model_file) == {"max_side_len": 384, "core_thresh": 0.0}


@pytest.mark.parametrize("content", ["{not json", "[320, 0.75]", "\xff"])
def test_an_unreadable_sidecar_is_one_line_naming_it(tmp_path, content):
    model_file = tmp_path / "east.tflite"
    inference_record.sidecar_path(model_file).write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match=r"east\.tflite\.inference\.json: not a readable inference record"):
        inference_record.read_sidecar(model_file)
