"""Attribute coverage (the face analogue of class coverage): the pure function against a hand computation,
the ``attributes`` metric with a hand-made judge (features: band brightness; head: a threshold at 0.5),
and ``latentatlas evaluate SAMPLES.npz --ref celeba:test --ref-root FOLDER`` on a tiny CelebA-format folder."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from latentatlas.cli import main
from latentatlas.metrics.evaluate import evaluate_samples
from latentatlas.metrics.modes import attribute_coverage, attribute_lines


def test_attribute_coverage_by_hand():
    real = torch.tensor([[0.9, 0.1, 0.6], [0.8, 0.2, 0.4], [0.2, 0.7, 0.6], [0.1, 0.1, 0.9]])
    fake = torch.tensor([[0.2, 0.9, 0.1], [0.3, 0.8, 0.2], [0.9, 0.6, 0.3]])
    out = attribute_coverage(real, fake, ["A", "B", "C"], labelled=torch.tensor([0.5, 0.25, 0.75]))
    # rates (mean probabilities): real A 0.5, B 0.275, C 0.625; samples A 1.4/3, B 2.3/3, C 0.2
    gaps = [abs(1.4 / 3 - 0.5), abs(2.3 / 3 - 0.275), abs(0.2 - 0.625)]
    assert out["attribute_gap"] == pytest.approx(sum(gaps) / 3)
    assert out["attributes_missing"] == 1 and out["n_attributes"] == 3          # C: 0.2 < half of 0.625
    rates = out["attribute_rates"]
    assert rates["real"] == pytest.approx([0.5, 0.275, 0.625]) and rates["labelled"] == [0.5, 0.25, 0.75]
    assert rates["samples"] == pytest.approx([1.4 / 3, 2.3 / 3, 0.2], abs=1e-5)
    lines = attribute_lines(rates)
    assert lines[0] == "B: 27.5 % of real faces, 76.7 % of samples (labelled 25.0 %)"   # largest gap first
    assert [line.split(":")[0] for line in lines] == ["B", "C", "A"]
    with pytest.raises(ValueError, match="fake_probs"):
        attribute_coverage(real, fake[:, :2], ["A", "B", "C"])
    with pytest.raises(ValueError, match="real_probs.*in \\[0, 1\\]"):
        attribute_coverage(real * 2, fake, ["A", "B", "C"])
    with pytest.raises(ValueError, match="labelled"):
        attribute_coverage(real, fake, ["A", "B", "C"], labelled=torch.zeros(2))


class BandJudge(nn.Module):
    """Features (B, 4): mean brightness of the patch of each band of ``banded_faces``; ``head``: logit
    400 (f - 0.5), so attribute j has probability 1 when patch j is brighter than 0.5 (about 0.69 with the
    attribute, 0.22 without), else 0."""

    name = "band-judge"
    weights_hash = "bands"
    attribute_names = [f"Band_{j}" for j in range(4)]

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 4)
        with torch.no_grad():
            self.head.weight.copy_(400 * torch.eye(4))
            self.head.bias.fill_(-200.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        return torch.stack([x[:, :, j * side // 4 + 1:(j + 1) * side // 4 - 1, side // 4:3 * side // 4].mean((1, 2, 3))
                            for j in range(4)], 1)


def test_attributes_metric_equals_the_hand_computation(banded_faces):
    real = banded_faces(90, seed=1)
    fake = banded_faces(70, seed=2, probs=(0.3, 0.0, 0.5, 0.95))
    real_rate, fake_rate = real.attributes.double().mean(0), fake.attributes.double().mean(0)
    real.attributes[:, 3] = 1 - real.attributes[:, 3]           # labels that disagree with the pixels
    out = evaluate_samples(fake.images, real, extractor=BandJudge(), metrics=("attributes", "is", "classes"))
    rates = out["attribute_rates"]
    assert rates["real"] == pytest.approx(real_rate.tolist(), abs=1e-5)          # judged, not labelled
    assert rates["labelled"] == pytest.approx([*real_rate[:3].tolist(), 1 - real_rate[3].item()], abs=1e-5)
    assert rates["samples"] == pytest.approx(fake_rate.tolist(), abs=1e-5)
    assert out["attribute_gap"] == pytest.approx(float((fake_rate - real_rate).abs().mean()))
    assert out["attributes_missing"] == int((fake_rate < 0.5 * real_rate).sum()) == 1
    assert out["protocol"]["attribute_rate"] == "mean probability" and set(out["skipped"]) == {"is", "classes"}


def test_a_metric_the_data_does_not_have_is_skipped_quietly(banded_faces, mnist_test, caplog):
    """The default metric list names both class and attribute coverage: faces have no classes, digits no
    attributes; each is skipped with its reason at info level, while a metric that lacks what it needs from the
    extractor (IS without logits) still warns."""
    faces = banded_faces(40, seed=1, side=16)
    digits = mnist_test.subset(torch.arange(60))
    with caplog.at_level(logging.INFO, logger="latentatlas.metrics.evaluate"):
        on_faces = evaluate_samples(faces.images, faces, extractor=BandJudge(), metrics=("classes", "attributes", "is"))
        on_digits = evaluate_samples(digits.images, digits, extractor="pixels", metrics=("frechet", "attributes"))
    assert "has none" in on_faces["skipped"]["classes"] and "attribute_rates" in on_faces
    assert "has none" in on_digits["skipped"]["attributes"] and on_digits["frechet"] >= 0
    levels = {r.getMessage().split()[1]: r.levelno for r in caplog.records if "skipped" in r.getMessage()}
    assert levels == {"classes": logging.INFO, "attributes": logging.INFO, "is": logging.WARNING}


def celeba_folder(folder, ds) -> None:
    """``ds`` as a CelebA-format folder: PNG images and list_attr_celeba.txt (-1/+1)."""
    folder.mkdir()
    lines = [str(len(ds)), " ".join(ds.attribute_names)]
    for i, (image, attrs) in enumerate(zip(ds.images, ds.attributes)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:06d}.png")
        lines.append(f"{i:06d}.png " + " ".join("1" if a else "-1" for a in attrs.tolist()))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")


def test_cli_evaluate_samples_against_a_celeba_folder(tmp_path, capsys, banded_faces):
    real = banded_faces(150, seed=0, side=64)
    celeba_folder(tmp_path / "faces", real)
    fake = banded_faces(60, seed=7, side=64, probs=(0.0, 0.4, 0.5, 0.6))     # Band_0 is never generated
    np.savez(tmp_path / "samples.npz", arr_0=fake.images.permute(0, 2, 3, 1).numpy())
    args = ["evaluate", str(tmp_path / "samples.npz"), "--ref", "celeba:test", "--ref-root", str(tmp_path / "faces"),
            "--extractor", "celeba-attributes"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rates = out["attribute_rates"]
    assert out["protocol"]["extractor"] == "celeba-attributes" and out["protocol"]["n_real"] == 15   # the test part
    assert set(out["skipped"]) == {"is", "classes"} and rates["names"] == real.attribute_names
    assert rates["samples"][0] < 0.5 * rates["real"][0] and out["attributes_missing"] >= 1
    assert main(args) == 0                                                        # the net now from the cache
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.strip().startswith("Band_0:"))
    assert line.strip() == (f"Band_0: {100 * rates['real'][0]:.1f} % of real faces, {100 * rates['samples'][0]:.1f} "
                            f"% of samples (labelled {100 * rates['labelled'][0]:.1f} %)")
    assert "attribute_rates" not in printed                                       # the lists are lines, not a row
