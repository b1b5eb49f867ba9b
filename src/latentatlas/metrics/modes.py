"""Mode coverage and mode-collapse detection.

- :func:`class_coverage`: how generated samples spread over the classes of the data (classes predicted by
  the dataset classifier for images; the nearest mode for the ring of Gaussians), against the real class
  distribution: classes covered and KL(real || generated);
- :func:`attribute_coverage`: the same for face attributes (rates judged by the attribute net);
- :func:`ring_modes`: the standard 2-D mode-collapse benchmark (a ring of Gaussians): modes covered and
  the fraction of high-quality samples (within 3 standard deviations of a mode);
- :class:`CollapseDetector`: during training, names the symptom when samples drop classes or recall falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from latentatlas.validate import check_number

MIN_SHARE = 0.1          # a class is covered when it gets at least this fraction of its real share
SMOOTHING = 0.5          # pseudo-count added to every generated class count in the KL
MISSING_RATIO = 0.5      # an attribute is missing when its sample rate is under this fraction of its real rate


def class_coverage(fake_classes: torch.Tensor, real_probs: torch.Tensor, *, min_share: float = MIN_SHARE) -> dict:
    """Coverage of K classes by generated samples with predicted classes ``fake_classes`` (n,) long, against
    the real class probabilities ``real_probs`` (K,).

    ``classes_covered``: classes whose generated share is at least ``min_share`` times their real share;
    ``class_kl``: KL(real || generated) in nats, generated shares smoothed with 0.5 pseudo-counts (a dropped
    class of real share p adds about p log(p n / 0.5)); ``class_shares``: generated share per class."""
    real = torch.as_tensor(real_probs, dtype=torch.float64).flatten()
    k = real.numel()
    if k < 1 or bool((real < 0).any()) or not math.isclose(float(real.sum()), 1.0, rel_tol=1e-6):
        raise ValueError(f"real_probs: expected K >= 1 probabilities summing to 1, got {real.tolist()}")
    fake = torch.as_tensor(fake_classes).long().flatten()
    if fake.numel() < 1 or int(fake.min()) < 0 or int(fake.max()) >= k:
        raise ValueError(f"fake_classes: expected at least one class index in [0, {k}), got {fake.numel()} values")
    counts = torch.bincount(fake, minlength=k).double()
    share = counts / fake.numel()
    smoothed = (counts + SMOOTHING) / (fake.numel() + SMOOTHING * k)
    present = real > 0
    kl = float((real[present] * (real[present] / smoothed[present]).log()).sum())
    covered = int(((share >= min_share * real) & present).sum())
    return {"classes_covered": covered, "n_classes": int(present.sum()), "class_kl": kl,
            "class_shares": [round(float(s), 5) for s in share]}


def attribute_coverage(real_probs: torch.Tensor, fake_probs: torch.Tensor, names: list[str], *,
                       labelled: torch.Tensor | None = None, missing_ratio: float = MISSING_RATIO) -> dict:
    """Attribute coverage, the face analogue of :func:`class_coverage`, from the attribute probabilities that
    one attribute net gives real images (N, A) and samples (M, A).

    The rate of an attribute is its mean probability: the net's expected share of images that have it (its
    BCE training calibrates it; the share of probabilities above 0.5 undercounts rare, hard attributes).
    ``attribute_gap``: mean over attributes of |sample rate - real rate|; ``attributes_missing``: attributes
    whose sample rate is under ``missing_ratio`` times their real rate; ``attribute_rates``: names, real
    and sample rates per attribute, and ``labelled``, the real images' labelled rates (A,) when given."""
    real = torch.as_tensor(real_probs, dtype=torch.float64)
    fake = torch.as_tensor(fake_probs, dtype=torch.float64)
    for param, probs in (("real_probs", real), ("fake_probs", fake)):
        if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] != len(names):
            raise ValueError(f"{param}: expected probabilities (N >= 1, {len(names)}) for the {len(names)} "
                             f"attribute names, got shape {tuple(probs.shape)}")
        if not bool(((probs >= 0) & (probs <= 1)).all()):
            raise ValueError(f"{param}: expected probabilities in [0, 1]")
    check_number("missing_ratio", missing_ratio, low=0, high=1)
    real_rate, fake_rate = real.mean(0), fake.mean(0)
    rates = {"names": list(names), "real": _rounded(real_rate), "samples": _rounded(fake_rate)}
    if labelled is not None:
        labelled = torch.as_tensor(labelled, dtype=torch.float64).flatten()
        if labelled.numel() != len(names):
            raise ValueError(f"labelled: expected {len(names)} rates, got {labelled.numel()}")
        rates["labelled"] = _rounded(labelled)
    return {"attribute_gap": float((fake_rate - real_rate).abs().mean()),
            "attributes_missing": int((fake_rate < missing_ratio * real_rate).sum()), "n_attributes": len(names),
            "attribute_rates": rates}


def attribute_lines(rates: dict) -> list[str]:
    """'Eyeglasses: 6.4 % of real faces, 1.1 % of samples (labelled 6.6 %)' per attribute of the
    ``attribute_rates`` of :func:`attribute_coverage`, the largest gap first."""
    labelled = rates.get("labelled") or [None] * len(rates["names"])
    rows = sorted(zip(rates["names"], rates["real"], rates["samples"], labelled), key=lambda r: -abs(r[2] - r[1]))
    return [f"{name}: {100 * real:.1f} % of real faces, {100 * fake:.1f} % of samples"
            + (f" (labelled {100 * lab:.1f} %)" if lab is not None else "") for name, real, fake, lab in rows]


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(float(v), 5) for v in values]


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Centres (modes, 2) equally spaced on a circle, the first at angle 0."""
    angle = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


def ring_modes(points: torch.Tensor, centres: torch.Tensor, std: float, *, min_fraction: float = 0.01) -> dict:
    """Mode statistics of 2-D samples ``points`` (n, 2) for a mixture with ``centres`` (K, 2) and ``std``.

    A sample is high quality when it lies within 3 ``std`` of its nearest centre; a mode is covered when
    at least ``min_fraction`` of all samples are high-quality samples of it (1 % where 1/K is expected).
    Returns modes_covered, high_quality_fraction and the coverage of :func:`class_coverage` over the
    high-quality samples (uniform real distribution)."""
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
        raise ValueError(f"points: expected (n, 2) samples, got shape {tuple(points.shape)}")
    check_number("std", std, low=0, strict=True)
    dist = torch.cdist(points, centres.double())
    nearest, mode = dist.min(dim=1)
    good = nearest <= 3 * std
    counts = torch.bincount(mode[good], minlength=centres.shape[0]).double()
    out = {"modes_covered": int((counts >= min_fraction * points.shape[0]).sum()), "n_modes": int(centres.shape[0]),
           "high_quality_fraction": float(good.double().mean())}
    if bool(good.any()):
        uniform = torch.full((centres.shape[0],), 1.0 / centres.shape[0], dtype=torch.float64)
        out["mode_kl"] = class_coverage(mode[good], uniform)["class_kl"]
    return out


class RingExtractor(nn.Module):
    """The ``ring`` feature extractor for the 2-D toy data (``data.name: ring``): features are the points
    (B, 2), logits the negative squared distances to the mode centres (B, K), so the sample monitor and
    the ``classes`` metric see which mode each sample belongs to."""

    name = "ring"

    def __init__(self, modes: int = 8, radius: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("centres", ring_centres(modes, radius).float())
        self.weights_hash = f"ring-{modes}-{radius:g}"

    @classmethod
    def for_dataset(cls, dataset) -> "RingExtractor":
        """The centres of a ``ring`` data set: its number of modes and its mean radius (rounded to 0.01)."""
        from latentatlas.data.toy import images_to_points

        if dataset is None or dataset.labels is None:
            return cls()
        radius = float(images_to_points(dataset.images).norm(dim=1).mean())
        return cls(int(dataset.n_classes), round(radius, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from latentatlas.data.toy import images_to_points

        return images_to_points(x).to(self.centres.dtype)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = self.forward(x)
        return points, -torch.cdist(points, self.centres).pow(2)


@dataclass
class CollapseDetector:
    """Watches the monitor's class coverage and recall from one evaluation to the next.

    Fires (returns a message) when generated samples cover fewer than ``min_covered`` of the classes (by
    default all must be covered: a class with under a tenth of its real share is a dropped mode), when
    KL(real || generated) exceeds ``max_kl`` nats (a strong imbalance), or when recall falls below
    ``recall_drop`` times its best value so far (after it reached ``min_recall``)."""

    min_covered: float = 1.0
    max_kl: float = 0.5
    recall_drop: float = 0.5
    min_recall: float = 0.1
    best_recall: float = field(default=0.0, init=False)

    def update(self, coverage: dict | None = None, recall: float | None = None) -> str | None:
        """The symptoms seen in this evaluation, in one sentence, or None when healthy."""
        symptoms = []
        if coverage is not None:
            k, covered = coverage["n_classes"], coverage["classes_covered"]
            if covered < math.ceil(self.min_covered * k) or coverage["class_kl"] > self.max_kl:
                symptoms.append(f"samples cover {covered} of {k} classes (KL to the real class distribution "
                                f"{coverage['class_kl']:.2f} nats)")
        if recall is not None:
            if self.best_recall >= self.min_recall and recall < self.recall_drop * self.best_recall:
                symptoms.append(f"recall fell to {recall:.3f} from a best of {self.best_recall:.3f}")
            self.best_recall = max(self.best_recall, recall)
        return "mode collapse: " + "; ".join(symptoms) if symptoms else None


def matched_error(codes: torch.Tensor, classes: torch.Tensor) -> dict:
    """Error rate of the best one-to-one matching of code values (n,) to predicted classes (n,) (Hungarian
    method on the confusion counts, as InfoGAN's categorical-code error is measured).  Returns ``error``,
    ``mapping`` {code value: class} and ``confusion`` (codes x classes counts)."""
    from scipy.optimize import linear_sum_assignment

    codes, classes = torch.as_tensor(codes).long().flatten(), torch.as_tensor(classes).long().flatten()
    if codes.shape != classes.shape or codes.numel() < 1 or int(codes.min()) < 0 or int(classes.min()) < 0:
        raise ValueError(f"codes, classes: expected equal-length non-negative indices, got {codes.numel()} and "
                         f"{classes.numel()}")
    confusion = torch.zeros(int(codes.max()) + 1, int(classes.max()) + 1, dtype=torch.long)
    confusion.index_put_((codes, classes), torch.ones_like(codes), accumulate=True)
    rows, cols = linear_sum_assignment(-confusion.numpy())
    matched = int(confusion[rows, cols].sum())
    return {"error": 1.0 - matched / codes.numel(), "mapping": {int(r): int(c) for r, c in zip(rows, cols)},
            "confusion": confusion.tolist()}
