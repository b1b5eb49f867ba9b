"""Attribute coverage in the run report, the face analogue of class coverage: the summary numbers in the
sample-quality table and the attributes with the largest gaps, largest first, one column per sampler."""

import re

from latentatlas.runs.report import ATTRIBUTE_ROWS, write_report


def coverage(samples: list[float], gap: float, missing: int) -> dict:
    names = [f"Attr_{i}" for i in range(10)]
    real = [0.1 * (i + 1) / 2 for i in range(10)]
    protocol = {"extractor": "celeba-attributes", "weights_hash": "w", "real_dataset": "celeba", "real_split": "test",
                "n_real": 100, "n_fake": 100, "seed": 0, "attribute_rate": "mean probability"}
    return {"frechet": 12.0, "attribute_gap": gap, "attributes_missing": missing, "n_attributes": 10,
            "attribute_rates": {"names": names, "real": real, "samples": samples, "labelled": [0.5] * 10},
            "protocol": protocol}


def test_report_shows_attribute_coverage(make_run):
    real = [0.1 * (i + 1) / 2 for i in range(10)]
    prior = list(real)
    prior[3] = 0.0                     # Attr_3 missing from the prior samples: gap 0.2
    gmm = list(real)
    gmm[7] += 0.3                      # Attr_7 too frequent in the mixture's samples: gap 0.3
    gmm[1] += 0.05
    run = make_run("faces", evaluate={"prior": coverage(prior, 0.02, 1), "gmm_k-2": coverage(gmm, 0.035, 0)},
                   data={"name": "celeba"})
    html = write_report(run).read_text()
    quality = html[html.index("<h2>Sample quality</h2>"):html.index("<h3>Attribute coverage</h3>")]
    assert "attribute rate gap" in quality and "attributes missing" in quality and "0.035" in quality
    section = html[html.index("<h3>Attribute coverage</h3>"):]
    first_table = section[:section.index("</table>")]
    assert "<th>prior (%)</th><th>gmm:k=2 (%)</th>" in first_table and "<th>labelled real (%)</th>" in first_table
    rows = re.findall(r"<tr><td>(Attr_\d)</td>(.*?)</tr>", first_table)
    assert len(rows) == ATTRIBUTE_ROWS and [name for name, _ in rows[:3]] == ["Attr_7", "Attr_3", "Attr_1"]
    cells = re.findall(r"<td class='num'>([^<]*)</td>", rows[1][1])
    assert cells == ["50", "20", "0", "20"]            # Attr_3: labelled, real faces, prior, gmm (%)
    assert "all 10 attributes" in section
