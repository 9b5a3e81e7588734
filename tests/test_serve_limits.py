"""serve.py's pixel limit: the 40 MP default, read from the header before decoding, and checked
again on the decoded image (for a header that lies)."""
import io

import cv2
import numpy as np
import pytest

import serve
from test_serve import png_bomb, rectangle_predictor


def _refusal(data: bytes, config: serve.ServeConfig) -> serve.UploadError:
    with pytest.raises(serve.UploadError) as error:
        serve.decode_upload(data, config)
    return error.value


def test_default_limit_is_40_megapixels():
    config = serve.ServeConfig()
    assert config.max_pixels == 40_000_000 == serve.DEFAULT_MAX_MEGAPIXELS * 1e6
    refused = _refusal(png_bomb(8000, 5001), config)  # 40.008 MP: one row too many
    assert refused.status == 413 and "8000x5001" in str(refused) and "the limit is 40.0 megapixels" in str(refused)
    # At the limit the header passes; this bomb's few bytes then fail to decode (422, not 413).
    assert _refusal(png_bomb(8000, 5000), config).status == 422


def test_default_limit_through_the_page():
    pytest.importorskip("flask")
    client = serve.create_app(rectangle_predictor, serve.ServeConfig(), model_info={"format": "test"}).test_client()
    response = client.post("/api/detect", data={"image": (io.BytesIO(png_bomb(10000, 4001)), "bomb.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 413 and "40.0 megapixels" in response.get_json()["error"]


def test_decoded_size_is_checked_when_the_header_lies(monkeypatch):
    """A 2.2 MP PNG whose header is read as 100x100 passes the header check; the decoded image
    is over the 2 MP limit and is refused all the same."""
    ok, data = cv2.imencode(".png", np.zeros((1100, 2000, 3), np.uint8))
    assert ok
    config = serve.ServeConfig(max_pixels=2_000_000)
    assert _refusal(data.tobytes(), config).status == 413  # the honest header is refused first
    monkeypatch.setattr(serve, "image_header", lambda data: ("png", 100, 100))
    refused = _refusal(data.tobytes(), config)
    assert refused.status in (413, 422)
    small = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))[1].tobytes()
    assert serve.decode_upload(small, config).shape == (100, 100, 3)  # the lying path still decodes honest sizes
