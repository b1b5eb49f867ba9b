"""The explorer's HTTP API through Starlette's TestClient: PNG sizes, frame counts, JSON shapes, and a 4xx
JSON naming the parameter for every kind of malformed request."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from latentatlas.explore.app import ENDPOINTS


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_decode_a_code_answers_a_png_of_the_image_size(client, explorer):
    z = ",".join(f"{v:.6f}" for v in explorer.code(7).tolist())
    response = client.get(f"/api/decode?z={z}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert png_size(response.content) == (28, 28)
    by_index = client.get("/api/decode?index=7")
    assert np.abs(pixels(by_index.content).astype(int) - pixels(response.content)).max() <= 1


def test_decode_several_codes_answers_one_strip(client, explorer):
    z = ";".join(",".join(str(v) for v in explorer.code(i).tolist()) for i in (1, 2, 3))
    response = client.get("/api/decode", params={"z": z})
    assert png_size(response.content) == (3 * 28, 28)


def test_image_is_the_dataset_image(client, explorer):
    response = client.get("/api/image?index=12")
    expected = explorer.ctx.images[12, 0].numpy()
    assert np.array_equal(pixels(response.content), expected)


@pytest.mark.parametrize("steps", [2, 7])
def test_interpolation_answers_one_frame_per_step(client, explorer, steps):
    body = client.get(f"/api/interpolate?a=3&b=50&steps={steps}&method=lerp").json()
    assert len(body["frames"]) == steps and len(body["codes"]) == steps
    assert all(f.startswith("data:image/png;base64,") for f in body["frames"])
    first = base64.b64decode(body["frames"][0].split(",", 1)[1])
    assert np.array_equal(pixels(first), pixels(client.get("/api/decode?index=3").content))
    strip = client.get(f"/api/interpolate?a=3&b=50&steps={steps}&format=png")
    assert png_size(strip.content) == (steps * 28, 28)


def test_map_has_one_entry_per_point(client, explorer):
    body = client.get("/api/map?method=pca&color=label").json()
    n = len(body["index"])
    assert n == 400 and len(body["x"]) == len(body["y"]) == len(body["color"]) == len(body["split"]) == n
    assert body["split"] == [explorer.label(i)["split"] for i in body["index"]]       # names, as /api/point
    assert set(body["split"]) <= {"train", "val", "test"}
    assert body["color_names"] == [str(c) for c in range(10)]
    assert len(client.get("/api/map?method=tsne").json()["x"]) == n


def test_hull_of_the_map_points_and_of_given_codes(client, explorer):
    flags = client.get("/api/hull").json()["outside_hull"]
    assert len(flags) == 400 and flags == explorer.points_outside_hull().tolist()
    centre = ",".join(str(v) for v in explorer.z_train.mean(0).tolist())
    assert client.get("/api/hull", params={"z": f"{centre};100,100,100,100"}).json() == {"outside_hull": [False, True]}


def test_point_move_and_sample(client, explorer, gmm_name):
    point = client.get("/api/point?index=9").json()
    assert point["index"] == 9 and len(point["z"]) == 4 and isinstance(point["outside_hull"], bool)
    moved = client.get("/api/move?index=9&direction=pc1&amount=1.5").json()
    assert moved["z"] == pytest.approx(explorer.move(9, "pc1", 1.5).tolist(), abs=1e-6)
    assert moved["image"].startswith("data:image/png;base64,")
    components = client.get("/api/samplers").json()[gmm_name]
    assert [c["component"] for c in components] == [0, 1, 2] and all(c["variance"] > 0 for c in components)
    url = f"/api/sample?sampler={gmm_name}&component=2&n=5&seed=1"
    drawn = client.get(url).json()
    assert len(drawn["frames"]) == 5 and drawn == client.get(url).json()         # same seed, same draws


def test_api_doc_lists_every_endpoint(client):
    listed = [e["path"] for e in client.get("/api").json()["endpoints"]]
    assert listed == list(ENDPOINTS)
    page = client.get("/api", headers={"accept": "text/html"}).text
    assert all(f"<code>{path}</code>" in page for path in ENDPOINTS)


def test_page_and_its_files_are_served(client):
    page = client.get("/").text
    script = client.get("/static/explorer.js")
    assert "<canvas id=\"map\"" in page and "/static/explorer.js" in page and script.status_code == 200
    assert not any(scheme in text for text in (page, script.text) for scheme in ("http://", "https://"))  # offline


MALFORMED = [
    ("/api/decode?z=1,2", "z", 400),                                  # wrong code dimension
    ("/api/decode?z=1,2,x,4", "z", 400),                              # not a number
    ("/api/decode?z=1,2,nan,4", "z[2]", 400),                         # not finite
    ("/api/decode", "z", 400),                                        # neither z nor index
    ("/api/image?index=400", "index", 400),                           # index out of range
    ("/api/image?index=-1", "index", 400),
    ("/api/image?index=two", "index", 400),
    ("/api/point", "index", 400),                                     # missing
    ("/api/point?index=1&index=2", "index", 400),                     # given twice
    ("/api/point?index=1&zoom=2", "zoom", 400),                       # unknown parameter
    ("/api/interpolate?a=0&b=1&method=cubic", "method", 400),         # unknown method
    ("/api/interpolate?a=0&b=1&steps=1", "steps", 400),
    ("/api/interpolate?a=0&b=1&steps=100", "steps", 400),
    ("/api/interpolate?a=0&b=1&format=gif", "format", 400),
    ("/api/map?method=umap-ish", "method", 400),
    ("/api/map?color=smile", "color", 400),
    ("/api/move?index=0&direction=pc99&amount=1", "direction", 400),
    ("/api/move?index=0&direction=pc1&amount=50", "amount", 400),
    ("/api/sample?sampler=kde&component=0", "sampler", 400),
    ("/api/sample?sampler=gmm_k-3_covariance-full&component=3", "component", 400),
    ("/api/sample?sampler=gmm_k-3_covariance-full&component=0&n=0", "n", 400),
    ("/api/hull?z=1,2,3;4,5", "z", 400),                              # codes of different lengths
    ("/api/decode?z=" + ";".join(["0,0,0,0"] * 257), "z", 400),      # too many codes in one request
]


@pytest.mark.parametrize("url, parameter, status", MALFORMED)
def test_malformed_requests_get_a_4xx_naming_the_parameter(client, url, parameter, status):
    response = client.get(url)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert message.startswith(f"{parameter}: ") and "Traceback" not in message


def test_unknown_paths_and_methods_get_json_errors(client):
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and "/api/nothing" in missing.json()["error"]
    posted = client.post("/api/decode?index=1")
    assert posted.status_code == 405 and "GET" in posted.json()["error"]


def test_an_unexpected_failure_is_a_500_without_traceback(client, explorer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(explorer, "decode", broken)
    response = client.get("/api/decode?index=1")
    assert response.status_code == 500 and response.json()["error"].startswith("internal error (RuntimeError)")
