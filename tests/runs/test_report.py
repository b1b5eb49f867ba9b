"""The report and the comparison page of a real (tiny) demo run: the answer first, lineage, notes, the demo's
interpolation strip and map, figures that name their source; rendered in headless chromium at 1280 px
(every image loads, no table overflows; screenshots in tests/artifacts/runs/)."""

import base64
import io
import os
import re

import pytest
from PIL import Image

from latentatlas.cli import main
from latentatlas.runs.figures import STAGE_KEY, read_source
from latentatlas.runs.store import Run

TINY_DEMO = ["name=demo", "data.limit=400", "model.latent_dim=4", "model.width=8", "train.epochs=1",
             "train.progress=false", "sample.samplers=[prior, 'gmm:k=2,covariance=full']", "sample.n=64",
             "evaluate.metrics=[frechet, prdc]", "evaluate.n_real=1000"]


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """`latentatlas demo` at a tiny size, notes and a tag on it, and a run derived from it (trained only)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    overrides = [arg for item in TINY_DEMO for arg in ("--set", item)]
    assert main(["demo", "--runs-dir", str(runs_dir), *overrides]) == 0
    demo = Run.open(runs_dir / "demo")
    assert main(["runs", "note", str(demo.path), "the prior samples are blurry", "--kind", "looked-at"]) == 0
    assert main(["runs", "note", str(demo.path), "one epoch is not enough", "--kind", "concluded"]) == 0
    assert main(["runs", "tag", str(demo.path), "baseline"]) == 0
    assert main(["derive", str(demo.path), "--name", "wider", "--set", "model.width=12", "--train-only"]) == 0
    child = Run.open(runs_dir / "wider")
    for run in (demo, child):
        assert main(["report", str(run.path)]) == 0
    return demo, child


def test_the_answer_comes_first_in_words_and_a_small_table(family):
    html = family[0].report_path.read_text()
    answer = html.index("class='answer'")
    assert answer < html.index("Lineage") < html.index("What was run") < html.index("Sample quality")
    sentence = re.search(r"<p class='answer'>(.*?)</p>", html).group(1)
    assert re.search(r"(Best sampler|Prior sampling is the best sampler) by Fréchet distance \(classifier "
                     r"features\)", sentence) and "reconstruction error <b>" in sentence
    top = html[answer:html.index("Lineage")]
    assert "<th>Fréchet distance (classifier features) ↓</th><th>precision ↑</th><th>recall ↑</th>" in top
    assert "<details><summary>Protocol: how these numbers were made</summary>" in top
    assert "<th>frechet</th>" not in html                              # no raw metric names as columns


def test_the_demo_report_shows_a_strip_a_map_and_the_analyses(family):
    html = family[0].report_path.read_text()
    for needle in ("<h2>Interpolation</h2>", "src='figures/interp_strips.png'", "<h2>Geometry of the codes</h2>",
                   "src='figures/geom_map_pca.png'", "active latent units"):
        assert needle in html, needle


def test_every_figure_names_its_source(family):
    demo = family[0]
    html = demo.report_path.read_text()
    sources = re.findall(r"src='(figures/[^']+)'", html)
    assert len(sources) > 8
    for src in sources:
        assert read_source(demo.path / src)[STAGE_KEY], src
    assert "run demo · stage interpolate · config " in html


def test_notes_tags_and_lineage_links(family):
    demo, child = family
    html = demo.report_path.read_text()
    assert "<h3>What I looked at</h3>" in html and "the prior samples are blurry" in html
    assert "<h3>What I concluded</h3>" in html and "<span class='tag'>baseline</span>" in html
    assert "href='../wider/report.html'" in html
    child_html = child.report_path.read_text()
    assert "How it differs from its parent <a href='../demo/report.html'>demo</a>" in child_html
    assert "<td>model.width</td><td class='num'>8</td><td class='num'>12</td>" in child_html
    assert "No samples scored yet" in child_html                   # trained only: the answer says what is missing


def test_compare_page_holds_its_figures_and_writes_nothing_else(family, tmp_path, capsys):
    demo, child = family
    out = tmp_path / "out" / "compare.html"
    before = {p: p.stat().st_mtime_ns for r in family for p in r.path.rglob("*")}
    assert main(["runs", "compare", str(demo.path), str(child.path), "--html", str(out)]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["compare.html"]
    assert {p: p.stat().st_mtime_ns for r in family for p in r.path.rglob("*")} == before
    html = out.read_text()
    assert "config: model.width" in html
    assert f"href='{os.path.relpath(demo.report_path, out.parent)}'" in html         # each run's report, linked
    pngs = [base64.b64decode(data) for data in re.findall(r"src='data:image/png;base64,([^']+)'", html)]
    assert len(pngs) >= 3                                    # sample grids, curves, scores against model.width
    stages = {Image.open(io.BytesIO(png)).text.get(STAGE_KEY) for png in pngs}
    assert {"sample", "compare"} <= stages


def _page(family, tmp_path, which: str):
    """The demo's report, or the comparison page of the demo and its child (written to tmp_path)."""
    demo, child = family
    if which == "report":
        return demo.report_path
    path = tmp_path / "compare.html"
    assert main(["runs", "compare", str(demo.path), str(child.path), "--html", str(path)]) == 0
    return path


@pytest.mark.parametrize("which", ["report", "compare"])
def test_pages_render_in_chromium_without_overflow(family, browser, artifacts, tmp_path, which):
    path = _page(family, tmp_path, which)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")   # folded tables too
    images = page.evaluate("[...document.images].map(i => [i.getAttribute('src').slice(0, 60), i.complete, "
                           "i.naturalWidth])")
    assert images and all(complete and width > 0 for _, complete, width in images), images
    overflow = page.evaluate("""() => [...document.querySelectorAll('table')].filter(t =>
        t.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5
        || t.scrollWidth > t.parentElement.clientWidth + 0.5).map(t => t.innerText.slice(0, 80))""")
    assert overflow == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
    shot = artifacts / f"{which}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert errors == [] and shot.stat().st_size > 10_000


@pytest.mark.parametrize("which", ["report", "compare"])
def test_on_a_phone_the_page_does_not_scroll_sideways_and_cells_keep_their_words(family, browser, tmp_path, which):
    """At 390 px wide tables scroll inside their own box; before, the report was 824 px wide and a narrow
    column broke its words one letter a line."""
    path = _page(family, tmp_path, which)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    narrowest = page.evaluate("Math.min(...[...document.querySelectorAll('td')].map(c => c.clientWidth))")
    page.close()
    assert narrowest >= 40                                  # 4em: no column of one letter a line


def test_report_cells_say_yes_or_no_for_booleans_and_align_numbers():
    from latentatlas.runs.report_html import cell

    assert cell(False) == "<td>no</td>" and cell(True) == "<td>yes</td>"
    assert cell(1) == "<td class='num'>1</td>" and cell(0.12345) == "<td class='num'>0.123</td>"
    assert cell(None) == "<td></td>" and cell("<b>") == "<td>&lt;b&gt;</td>"
