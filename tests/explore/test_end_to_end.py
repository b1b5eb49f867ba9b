"""End to end: `latentatlas explore RUN --port P` in a subprocess, driven by headless Debian chromium through
playwright (skipped, with the reason, where either is absent).  Screenshots go to tests/artifacts/explore/."""

import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from latentatlas.cli import main


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_cli_serves_the_api_over_http(served, explore_run):
    status, info = get(f"{served}/api/info")
    assert status == 200 and info["run"] == explore_run.name and info["latent_dim"] == 4
    status, body = get(f"{served}/api/interpolate?a=0&b=1&steps=0")
    assert status == 400 and body["error"].startswith("steps: expected an int in [2, 64], got 0")


def test_explore_without_the_extra_says_how_to_install_it(explore_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)            # as if uvicorn were not installed
    assert main(["explore", str(explore_run.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'latentatlas[explore]'" in err


@pytest.fixture
def page(browser, served):
    """The explorer's page, once its map is drawn and the hull flags are in; fails on any script error."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    script_errors = []
    page.on("pageerror", lambda err: script_errors.append(str(err)))
    page.goto(served)
    page.wait_for_function("window.explorer && window.explorer.state.ready && window.explorer.state.outside",
                           timeout=60_000)
    yield page
    page.close()
    assert script_errors == []


def click_row(page, row: int) -> None:
    """Click the point of ``row`` on the map, where the page drew it."""
    box = page.locator("#overlay").bounding_box()
    at = page.evaluate("row => window.explorer.screenPosition(row)", row)
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])


def extreme_rows(page) -> tuple[int, int]:
    """The leftmost and the rightmost points: no other point sits on them."""
    return tuple(page.evaluate("""() => {
        const s = window.explorer.state, order = s.px.map((x, i) => i).sort((i, j) => s.px[i] - s.px[j]);
        return [s.map.index[order[0]], s.map.index[order[order.length - 1]]]; }"""))


def test_map_hover_click_two_points_strip_and_slider(page, artifacts):
    assert page.locator("#map").get_attribute("data-points") == "400"
    a, b = extreme_rows(page)
    page.fill("#path-steps", "7")
    box = page.locator("#overlay").bounding_box()
    at = page.evaluate("row => window.explorer.screenPosition(row)", a)
    page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
    page.wait_for_selector("#tooltip:not([hidden])")
    assert f"index={a}" in page.get_attribute("#tooltip-img", "src")

    click_row(page, a)
    page.wait_for_function("document.querySelector('#selected-decoded').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#selected-decoded').naturalWidth") == 28
    assert f"row {a}" in page.inner_text("#selected-info")
    click_row(page, b)
    frames = page.locator("#strip img.frame")
    frames.nth(6).wait_for()
    assert frames.count() == 7
    assert page.evaluate("window.explorer.state.selected") == [a, b]
    page.wait_for_function("[...document.querySelectorAll('#strip img.frame')].every(i => i.naturalWidth == 28)")
    page.screenshot(path=str(artifacts / "strip.png"), full_page=True)

    before = page.get_attribute("#moved", "src")
    page.focus("#amount")
    for _ in range(4):
        page.keyboard.press("ArrowRight")                    # 4 steps of 0.25: one standard deviation
    page.wait_for_function("document.querySelector('#moved-info').textContent.startsWith('1 sd along pc1')")
    assert page.get_attribute("#moved", "src") != before and page.input_value("#amount") == "1"
    page.screenshot(path=str(artifacts / "slider.png"), full_page=True)
    assert (artifacts / "strip.png").stat().st_size > 0 and (artifacts / "slider.png").stat().st_size > 0


def test_mixture_panel_samples_a_component(page, artifacts):
    rows = page.locator("#components tbody tr")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    assert page.inner_text("#sampler option") == "gmm:k=3,covariance=full"    # the spec, as the report names it
    rows.nth(1).click()
    page.locator("#samples img.frame").nth(7).wait_for()
    assert page.locator("#samples img.frame").count() == 8
    page.screenshot(path=str(artifacts / "mixture.png"), full_page=True)
    first = page.get_attribute("#samples img.frame", "src")
    with page.expect_response(lambda r: "/api/sample" in r.url and "seed=5" in r.url):
        page.fill("#sample-seed", "5")
        page.dispatch_event("#sample-seed", "change")                # a new seed draws the component again
    page.wait_for_function("src => document.querySelector('#samples img.frame').src !== src", arg=first)


def test_an_overtaken_map_answer_is_dropped(page, served):
    """t-SNE takes seconds, PCA is cached: choosing t-SNE, then PCA again, must leave the PCA map drawn
    when the t-SNE answer arrives."""
    pca = page.request.get(f"{served}/api/map?method=pca&color=label").json()
    with page.expect_response(lambda r: "method=tsne" in r.url, timeout=120_000):
        page.select_option("#map-method", "tsne")
        page.select_option("#map-method", "pca")
        page.wait_for_function("document.querySelector('#map-status').textContent.endsWith('codes')")
    page.wait_for_timeout(500)                                    # the page's handling of the late answer
    assert page.evaluate("window.explorer.state.map.x") == pca["x"]
    assert page.input_value("#map-method") == "pca" and page.inner_text("#map-status") == "400 codes"


def test_a_malformed_request_is_a_4xx_shown_on_the_page(page, served, artifacts):
    response = page.request.get(f"{served}/api/decode?z=1,2")
    assert response.status == 400 and response.json()["error"].startswith("z: expected 4 numbers per code")
    a, b = extreme_rows(page)
    page.fill("#path-steps", "1")                            # the page passes it on; the server refuses it
    click_row(page, a)
    click_row(page, b)
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error").startswith("steps: expected an int in [2, 64], got 1")
    page.screenshot(path=str(artifacts / "error.png"))
    assert page.locator("#strip img.frame").count() == 0             # no frames of other settings beside it
    page.fill("#path-steps", "5")
    page.dispatch_event("#path-steps", "change")
    page.locator("#strip img.frame").nth(4).wait_for()
    assert page.is_hidden("#error")                                    # the next answer clears the old error


def test_the_page_fits_a_phone_screen(browser, served, artifacts):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(served)
    page.wait_for_function("window.explorer && window.explorer.state.ready", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390     # the panels go under the map
    page.screenshot(path=str(artifacts / "phone.png"), full_page=True)
    page.close()


def test_ctrl_c_stops_at_once_during_a_slow_request(own_server):
    """The explorer writes nothing, so Ctrl-C need not wait for a t-SNE map under way (its thread cannot be
    cancelled; uvicorn waited for it, then printed tracebacks on a second Ctrl-C)."""
    answer = {}

    def ask() -> None:
        try:
            answer["status"] = urllib.request.urlopen(f"{own_server.url}/api/map?method=tsne", timeout=60).status
        except OSError as err:                                      # the connection closed without an answer
            answer["error"] = err

    asking = threading.Thread(target=ask)
    asking.start()
    time.sleep(0.3)                                                  # under way: t-SNE of 400 codes takes seconds
    own_server.process.send_signal(signal.SIGINT)
    assert own_server.stop() == 0
    asking.join(timeout=60)
    assert "error" in answer, answer
    output = "".join(own_server.lines)
    assert "Traceback" not in output and output.rstrip().endswith("explorer: stopped")


def test_mixtures_that_cannot_be_read_are_said_in_their_panel(browser, served):
    """The map's first answer clears the error line, which hid a failed /api/samplers: the panel says it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/api/samplers", lambda route: route.fulfill(status=500, content_type="application/json",
                                                              body='{"error": "a broken sampler file"}'))
    page.goto(served)
    page.wait_for_function("window.explorer && window.explorer.state.ready", timeout=60_000)
    assert page.inner_text("#mixture-status") == "the fitted mixtures could not be read: a broken sampler file"
    page.close()
