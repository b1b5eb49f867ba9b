"""Inversion: codes for models without an encoder (GANs), so that every latent tool applies to them.

Two steps (as in the GAN-inversion literature, e.g. Zhu et al. 2016/2020):

1. an encoder E: x -> z trained after the generator G is frozen, on two losses: latent reconstruction
   on generated images, |E(G(z)) - z|^2 with z from the prior, and image reconstruction on real images,
   |G(E(x)) - x|^2 (weighted by ``IMAGE_WEIGHT``);
2. per-image optimisation of z started from E(x): Adam on |G(z) - x|^2 (mean over pixels) plus
   ``prior_weight * |z|^2 / d``, which keeps codes where the prior puts its mass.

Shapes: images float (N, C, H, W) in [0, 1] (uint8 accepted), labels (N,) for conditional models,
codes (N, latent_dim).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.data.base import to_float
from latentatlas.fileio import torch_load, torch_save
from latentatlas.latent.codes import labels_for
from latentatlas.models.base import checked_labels
from latentatlas.models.nets import build_encoder, conditioned_shape, with_label_planes
from latentatlas.rng import to_device, weights_from
from latentatlas.tensors import host_values, map_rows
from latentatlas.validate import check_finite, check_number

log = logging.getLogger(__name__)

FORMAT = "latentatlas-inverter/1"
IMAGE_WEIGHT = 10.0


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with gradients off for its parameters; restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


class Inverter(nn.Module):
    """Encoder + per-image refinement for the generator of ``model`` (its architecture and width)."""

    def __init__(self, model: nn.Module, *, refine_steps: int = 30, lr: float = 0.03, prior_weight: float = 0.01,
                 batch_size: int = 256, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_number("codes.refine_steps", refine_steps, low=0, integer=True)
        check_number("codes.lr", lr, low=0, strict=True)
        check_number("codes.prior_weight", prior_weight, low=0)
        check_number("codes.batch_size", batch_size, low=1, integer=True)
        cfg = model.config
        self.settings = {"refine_steps": refine_steps, "lr": lr, "prior_weight": prior_weight,
                         "batch_size": batch_size}
        self.shape = {"image_shape": list(model.image_shape), "latent_dim": model.latent_dim,
                      "architecture": cfg.architecture, "width": cfg.width, "hidden_layers": cfg.hidden_layers,
                      "n_classes": model.n_classes if getattr(model, "conditional", False) else None}
        self.label_classes = self.shape["n_classes"]
        with weights_from(generator):   # the encoder's first weights: the same for the same generator
            self.encoder = build_encoder(cfg.architecture, conditioned_shape(model.image_shape, self.label_classes),
                                         model.latent_dim, cfg.width, cfg.hidden_layers)
        self.history: list[dict[str, float]] = []

    # -- step 1: the encoder ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E(x[, y]): (B, C, H, W) float in [0, 1] -> codes (B, latent_dim)."""
        return self.encoder(with_label_planes(x, y, self.label_classes))

    def fit(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *, steps: int = 1500,
            batch_size: int = 128, lr: float = 1e-3, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> "Inverter":
        """Train the encoder for ``steps`` Adam steps on real ``images`` uint8 (N, C, H, W) (and their labels
        for conditional models) and on the model's own samples; the model is not changed."""
        check_number("codes.encoder_steps", steps, low=0, integer=True)
        if images.shape[0] < 1:
            raise ValueError("images: expected at least one training image to fit the inversion encoder")
        self.to(device).train()
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        conditional = self.label_classes is not None
        images = images.to(device)   # once: a copy a step from ordinary memory would wait for a GPU each time
        labels = labels_for(model, labels, images.shape[0])   # read once, not per step
        labels = None if labels is None else labels.to(device)
        curve: list[dict[str, Any]] = []   # read into ``history`` together at the end (one wait on a GPU)
        with frozen(model), checked_labels():
            for step in range(steps):
                z = model.prior_sample(batch_size, generator=generator)   # on the model's device
                y_fake = to_device(torch.randint(self.label_classes, (batch_size,), generator=generator), device) \
                    if conditional else None
                rows = to_device(torch.randint(images.shape[0], (batch_size,), generator=generator), device)
                x_real = to_float(images[rows])
                y_real = labels[rows] if conditional else None
                with torch.no_grad():
                    x_fake = model.decode(z, y_fake)
                latent = F.mse_loss(self(x_fake, y_fake), z)
                pixels = F.mse_loss(model.decode(self(x_real, y_real), y_real), x_real)
                loss = latent + IMAGE_WEIGHT * pixels
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step % 100 == 0 or step == steps - 1:
                    curve.append({"step": step + 1, "latent_mse": latent.detach(), "pixel_mse": pixels.detach()})
        self.history += host_values(curve)
        log.info("inversion encoder: %d steps, latent mse %.4g, pixel mse %.4g", steps,
                 *(self.history[-1][k] for k in ("latent_mse", "pixel_mse")) if self.history else (0, 0))
        return self.eval()

    # -- step 2: per-image optimisation ----------------------------------------------------------------
    def refine(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """``refine_steps`` Adam steps on each code of z (B, d) towards decode(z) = x (B, C, H, W)."""
        z = z.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.settings["lr"])
        weight = self.settings["prior_weight"] / z.shape[1]
        with torch.enable_grad():   # callers may hold no_grad (e.g. cycle-error measures)
            for _ in range(self.settings["refine_steps"]):
                per_image = (model.decode(z, y) - x).pow(2).flatten(1).mean(1) + weight * z.pow(2).sum(1)
                opt.zero_grad(set_to_none=True)
                per_image.sum().backward()   # each code's gradient is its own image's
                opt.step()
        return z.detach()

    def invert(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """Codes (N, latent_dim) on the CPU for images (N, C, H, W) uint8 or float in [0, 1]."""
        self.to(device).eval()

        def codes_of(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
            x = to_float(x) if x.dtype == torch.uint8 else x.float()
            with torch.no_grad():
                z = self(x, y)
            return self.refine(model, x, y, z) if self.settings["refine_steps"] else z
        y = labels_for(model, labels, images.shape[0])   # read once, not per batch
        with frozen(model), checked_labels():
            return map_rows(codes_of, images, y, batch_size=self.settings["batch_size"], device=device)

    # -- files ---------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"method": "inversion", **self.settings, "encoder_steps": last.get("step", 0),
                "encoder_latent_mse": last.get("latent_mse"), "encoder_pixel_mse": last.get("pixel_mse")}

    def save(self, path: str | Path) -> Path:
        state = {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}
        return torch_save({"format": FORMAT, "encoder": state, "settings": self.settings, "shape": self.shape,
                           "history": self.history}, path)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module, map_location: str | torch.device = "cpu") -> "Inverter":
        """An inverter saved with :meth:`save`, checked against ``model`` (same shapes)."""
        data = torch_load(path, "inverter", map_location=map_location, hint="; run `latentatlas encode` first")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"inverter: {str(path)!r} is not a latentatlas inverter (format {FORMAT})")
        check_finite(f"inverter {str(path)!r} (encoder weights)", data["encoder"])
        inverter = cls(model, **data["settings"])
        if inverter.shape != data["shape"]:
            raise ValueError(f"inverter: {str(path)!r} was made for {data['shape']}, not this model's {inverter.shape}")
        inverter.encoder.load_state_dict(data["encoder"])
        inverter.history = list(data.get("history", []))
        return inverter.to(map_location).eval()
