"""The report shows a fitted sampler's warnings (a GMM with components starved of codes) in one visible
line, and nothing for a healthy fit."""

from __future__ import annotations

import html
import re

import torch

from latentatlas.latent.samplers import GMM
from latentatlas.runs.report import write_report


def _codes(sizes: tuple[int, ...], d: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.cat([40.0 * i + torch.randn(s, d, generator=g, dtype=torch.float64) for i, s in enumerate(sizes)])


def _report_with(make_run, name: str, sampler: GMM) -> str:
    run = make_run(name)
    run.update_metrics("samplers", {"gmm": {**sampler.describe(), "spec": sampler.spec}})
    return html.unescape(write_report(run).read_text())


def test_the_report_warns_about_starved_components_and_not_about_a_healthy_fit(make_run):
    starved = GMM(k=3, reg_covar=1e-3).fit(_codes((60, 40, 3)), generator=torch.Generator().manual_seed(0))
    page = _report_with(make_run, "starved", starved)
    line = re.search(r"<li>gmm:k=3,reg_covar=0.001: (.*?)</li>", page)
    assert line and line.group(1) == starved.describe()["warnings"][0]
    assert line.group(1).startswith("1 of 3 components hold fewer codes than the 8 latent dimensions (smallest 3.0)")
    assert "<details" not in page[page.index("<h2>Latent samplers"):line.start()]   # visible, not folded away
    healthy = GMM(k=2).fit(_codes((60, 40)), generator=torch.Generator().manual_seed(0))
    page = _report_with(make_run, "healthy", healthy)
    assert "Latent samplers" in page and "Warnings from the fits" not in page and "fewer codes" not in page
