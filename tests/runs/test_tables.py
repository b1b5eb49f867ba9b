"""Numbers for people and the table exports (Markdown, CSV, LaTeX tabular, HTML) with the protocol footnote."""

import csv
import io

import pytest

from latentatlas.runs.tables import fmt_number, metric_label
from latentatlas.runs.tables import Table, render, write_table


@pytest.mark.parametrize("value, text", [(72.6178, "72.6"), (426.93, "427"), (12345.6, "12,346"), (0.15548, "0.155"),
                                         (0.000123456, "1.23e-04"), (1.0, "1"), (0.0, "0"), (7, "7"),
                                         (123456, "123,456"), (-2.4567, "-2.46"), (None, ""), ("gmm", "gmm"),
                                         (True, "True")])
def test_numbers_keep_three_meaningful_digits(value, text):
    assert fmt_number(value) == text


def test_metric_names_are_words():
    assert metric_label("evaluate.prior.frechet", "classifier") == "Fréchet distance (classifier features)"
    assert metric_label("mse") == "reconstruction error (MSE per pixel)"
    assert metric_label("some_new_score") == "some new score"


TABLE = Table(["quantity", "run_a", "b"], [["FD 50% & more", 72.6178, 70.0], ["sampler", "gmm:k=2", "prior"]],
              notes=["Protocol: classifier features, 40 real test images vs 64 generated."], title="scores")


def test_markdown_has_a_footnote_with_the_protocol():
    text = render(TABLE, "md")
    assert "| quantity[^1] | run_a | b |" in text and "| FD 50% & more | 72.6 | 70 |" in text
    assert text.rstrip().endswith("[^1]: Protocol: classifier features, 40 real test images vs 64 generated.")


def test_csv_keeps_full_precision_and_notes_as_comment_lines():
    text = render(TABLE, "csv")
    rows = list(csv.reader(io.StringIO("".join(line + "\n" for line in text.splitlines()
                                               if not line.startswith("#")))))
    assert rows[0] == ["quantity", "run_a", "b"] and rows[1] == ["FD 50% & more", "72.6178", "70.0"]
    assert text.splitlines()[-1] == "# Protocol: classifier features, 40 real test images vs 64 generated."


def test_latex_tabular_escapes_and_footnotes():
    text = render(TABLE, "tex")
    assert text.startswith("\\begin{tabular}{lll}")          # a column mixing text and numbers is left-aligned
    assert "quantity\\footnotemark & run\\_a & b \\\\" in text
    assert "FD 50\\% \\& more & 72.6 & 70 \\\\" in text
    assert "\\footnotetext{Protocol: classifier features, 40 real test images vs 64 generated.}" in text
    numeric = render(Table(["x", "y"], [["a", 1.5], ["b", 2]]), "tex")
    assert numeric.startswith("\\begin{tabular}{lr}") and "\\footnotemark" not in numeric


def test_write_table_picks_the_format_from_the_suffix(tmp_path):
    assert write_table(TABLE, tmp_path / "t.tex").read_text() == render(TABLE, "tex")
    assert "<td class='num'>72.6</td>" in write_table(TABLE, tmp_path / "t.html").read_text()
    with pytest.raises(ValueError, match=r"--out: expected a file ending in .*got '.*t\.xlsx'"):
        write_table(TABLE, tmp_path / "t.xlsx")
    with pytest.raises(ValueError, match="format: expected one of md, csv, tex, html, got 'pdf'"):
        render(TABLE, "pdf")
