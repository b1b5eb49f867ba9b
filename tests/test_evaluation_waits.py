"""The batched evaluations (encoding codes, decoding them, inverting a generator, extracting features, an
attribute net's logits, a judge's probabilities) wait for the device as often for four batches as for one:
they run through ``tensors.map_rows``, not a loop of ``.to(device)`` and ``.cpu()`` that waits twice a batch
(tests/gpu_waits.py says what waits)."""

from __future__ import annotations

import pytest
import torch

from latentatlas.latent.codes import decode_codes, encode_images
from latentatlas.latent.inversion import Inverter
from latentatlas.metrics.attribute_net import AttributeNet, predict_logits
from latentatlas.metrics.classifier import SmallCNN
from latentatlas.metrics.features import extract_features
from latentatlas.latent.attributes import judge_probabilities
from tests.gpu_waits import count_waits
from tests.models.small import N_CLASSES, SHAPE, small_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BATCH = 8


def _images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return torch.randint(256, (n, *SHAPE), generator=g, dtype=torch.uint8), torch.arange(n) % N_CLASSES


def _evaluations(device: str) -> dict:
    """name -> a function of (images uint8, labels) that evaluates them in batches of BATCH on ``device``."""
    models = {family: small_model(family).to(device) for family in ("vae", "cvae", "vqvae", "gan", "cgan")}
    torch.manual_seed(0)
    classifier = SmallCNN(1, N_CLASSES, width=4, feature_dim=8).to(device)
    attributes = AttributeNet(1, ["a", "b"], width=4).to(device)
    inverters = {steps: Inverter(models["gan"], refine_steps=steps, batch_size=BATCH) for steps in (0, 2)}
    inverters["cgan"] = Inverter(models["cgan"], refine_steps=2, batch_size=BATCH)

    class Judge(torch.nn.Module):
        attribute_names = ["bright"]

        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def attribute_probs(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.scale * x.flatten(1).mean(1, keepdim=True))

    judge = Judge().to(device)
    codes = torch.randn(32, 6, generator=torch.Generator().manual_seed(0))
    return {
        "encode vae": lambda x, y: encode_images(models["vae"], x, batch_size=BATCH, device=device),
        "encode cvae": lambda x, y: encode_images(models["cvae"], x, y, batch_size=BATCH, device=device),
        "encode vqvae": lambda x, y: encode_images(models["vqvae"], x, batch_size=BATCH, device=device),
        "decode cvae": lambda x, y: decode_codes(models["cvae"], codes[:len(x)], y, batch_size=BATCH, device=device),
        "invert": lambda x, y: inverters[0].invert(models["gan"], x, device=device),
        "invert cgan": lambda x, y: inverters["cgan"].invert(models["cgan"], x, y, device=device),
        "invert and refine": lambda x, y: inverters[2].invert(models["gan"], x, device=device),
        "features and logits": lambda x, y: extract_features(classifier, x, batch_size=BATCH, device=device,
                                                             logits=True),
        "attribute logits": lambda x, y: predict_logits(attributes, x, batch_size=BATCH, device=device),
        "judge": lambda x, y: judge_probabilities(judge, x.float() / 255, batch_size=BATCH),
    }


@pytest.mark.parametrize("device", DEVICES)
def test_a_batched_evaluation_waits_as_often_for_four_batches_as_for_one(device):
    evaluations = _evaluations(device)
    one, four = _images(BATCH), _images(4 * BATCH)
    for name, evaluate in evaluations.items():
        evaluate(*one)                                     # first calls may set up (caches, lazy modules)
        assert count_waits(lambda: evaluate(*one), device) == count_waits(lambda: evaluate(*four), device), name


def test_a_batched_evaluation_gives_the_rows_that_one_batch_of_all_of_them_gives():
    model = small_model("cvae")
    images, labels = _images(4 * BATCH)
    mean, logvar = encode_images(model, images, labels, batch_size=BATCH)
    whole, whole_logvar = encode_images(model, images, labels, batch_size=len(images))
    torch.testing.assert_close(mean, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logvar, whole_logvar, rtol=1e-5, atol=1e-6)
    decoded = decode_codes(model, mean, labels, batch_size=BATCH)
    assert decoded.shape == (len(images), *SHAPE) and decoded.dtype == torch.float32
    torch.testing.assert_close(decoded, decode_codes(model, mean, labels, batch_size=len(images)),
                               rtol=1e-5, atol=1e-6)
