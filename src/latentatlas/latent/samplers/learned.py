"""The shared machinery of learned samplers (``ddpm``, ``two-stage``): a small torch network trained on
standardised codes with Adam, a training curve, and a resumable fit.

Codes z (n, d) are standardised per dimension (mean 0, standard deviation 1) before training and draws
are mapped back (``prepare`` / ``restore``; grid samplers keep their integer codes as they are).
``fit(z, generator=g, checkpoint=path)`` writes the network, optimizer, generator state and curve to
``path`` every ``checkpoint_every`` iterations and, when the file exists for the same codes and
hyperparameters, continues from it: an interrupted fit resumes to the same weights as an uninterrupted one.
Subclasses set ``defaults`` (``iters``, ``batch_size``, ``lr`` and their own) and implement
``build_network(d)``, ``training_loss(net, *batch, generator)`` and ``draw(net, n, generator)``.
"""

from __future__ import annotations

import math
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentatlas.fileio import content_hash, torch_load, torch_save
from latentatlas.latent.samplers.base import LatentSampler, default_generator
from latentatlas.models.ema import ema_decay_at, ema_update, make_ema
from latentatlas.optim import adam, load_adam_state
from latentatlas.progress import on_terminal, progress_bar
from latentatlas.rng import to_device, weights_from
from latentatlas.tensors import host_values
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

LEARNED_DEFAULTS = dict(iters=3000, batch_size=256, lr=1e-3, lr_decay="cosine", ema=0.999, checkpoint_every=500)


class LearnedSampler(LatentSampler):
    """Base class: fitted state is ``weights_`` (the network's state dict), ``mean_`` and ``std_`` (d,),
    ``history_`` (the training curve: [{"iter", "loss"}]).  The saved weights are the exponential moving
    average (decay ``ema``, 0 for the last iterate) of the iterates, whose step size follows ``lr_decay``."""

    def _check_learned_params(self) -> None:
        check_number("iters", self.iters, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("lr", self.lr, low=0, strict=True)
        check_number("checkpoint_every", self.checkpoint_every, low=1, integer=True)
        check_choice("lr_decay", self.lr_decay, ("cosine", "none"))
        check_number("ema", self.ema, low=0, high=0.9999)

    # -- subclass hooks ---------------------------------------------------------------------------------
    def build_network(self, d: int) -> nn.Module:
        raise NotImplementedError

    def prepare(self, z: torch.Tensor, **options: Any) -> tuple[torch.Tensor, ...]:
        """The training tensors (rows aligned with z): here the standardised codes, with ``mean_``/``std_`` set."""
        x = z.detach().float()
        self.mean_ = x.mean(0)
        self.std_ = x.std(0).clamp_min(1e-6) if x.shape[0] > 1 else torch.ones(x.shape[1], device=x.device)
        return ((x - self.mean_) / self.std_,)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """Draws in the training space -> codes."""
        return x * self.std_ + self.mean_

    def training_loss(self, net: nn.Module, *batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, net: nn.Module, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    # -- fitting ----------------------------------------------------------------------------------------
    def _fit(self, z: torch.Tensor, generator: torch.Generator | None, checkpoint: str | Path | None = None,
             **options: Any) -> None:
        g = default_generator(generator, 0)
        data = self.prepare(z, **options)
        x = data[0]
        with weights_from(g):
            net = self.build_network(x.shape[1]).to(x.device)
        opt = adam(net.parameters(), lr=self.lr)
        average = make_ema(net)
        # a resumed fit must be on the same codes, with the same hyperparameters
        key = {"codes": content_hash(z)[:16], "params": self.get_params(), "name": self.name}
        start, history = self._resume(checkpoint, key, net, average, opt, g)
        curve: list[dict[str, Any]] = []   # losses read into ``history`` together (one wait on a GPU)
        log.info("%s: fitting %d iterations on %d codes", self.name, self.iters - start, x.shape[0])
        with progress_bar(on_terminal(), f"fitting {self.name}", self.iters - start) as advance:
            for it in range(start, self.iters):
                rows = to_device(torch.randint(x.shape[0], (min(self.batch_size, x.shape[0]),), generator=g), x.device)
                loss = self.training_loss(net, *(t[rows] for t in data), generator=g)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for group in opt.param_groups:
                    group["lr"] = self.learning_rate(it)
                opt.step()
                ema_update(average, net, ema_decay_at(it + 1, self.ema))
                advance(loss)
                if (it + 1) % max(1, self.iters // 100) == 0 or it + 1 == self.iters:
                    curve.append({"iter": it + 1, "loss": loss.detach()})
                saving = checkpoint is not None and ((it + 1) % self.checkpoint_every == 0 or it + 1 == self.iters)
                if saving or it + 1 == self.iters:
                    history.extend(host_values(curve))
                    curve = []
                if saving:
                    torch_save({**key, "iter": it + 1, "net": net.state_dict(), "average": average.state_dict(),
                                "opt": opt.state_dict(), "generator": g.get_state(), "history": history}, checkpoint)
        self.weights_ = {k: v.detach().cpu() for k, v in average.eval().state_dict().items()}
        self.history_ = history
        self._net = average

    def learning_rate(self, it: int) -> float:
        """The step size of iteration ``it`` (0-based): ``lr``, decayed to 0 on a half cosine when
        ``lr_decay="cosine"``."""
        if self.lr_decay == "none":
            return float(self.lr)
        return 0.5 * float(self.lr) * (1 + math.cos(math.pi * it / self.iters))

    def _resume(self, checkpoint, key: dict, net: nn.Module, average: nn.Module, opt,
                g: torch.Generator) -> tuple[int, list]:
        """(first iteration, curve so far): from ``checkpoint`` when it holds this fit, else (0, [])."""
        if checkpoint is None or not Path(checkpoint).is_file():
            return 0, []
        try:
            saved = torch_load(checkpoint, "sampler checkpoint")
        except ValueError as exc:   # damaged: the fit is deterministic, so starting afresh loses only time
            log.warning("%s; starting the fit afresh", exc)
            return 0, []
        if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in key.items()):
            log.info("%s: a checkpoint of another fit; starting afresh", checkpoint)
            return 0, []
        net.load_state_dict(saved["net"])
        average.load_state_dict(saved["average"])
        load_adam_state(opt, saved["opt"])
        g.set_state(saved["generator"])
        log.info("%s: resuming the fit at iteration %d of %d", checkpoint, saved["iter"], self.iters)
        return int(saved["iter"]), list(saved["history"])

    def network(self) -> nn.Module:
        """The fitted network in eval mode on the codes' device (rebuilt from ``weights_`` after a load)."""
        self._check_fitted()
        net = getattr(self, "_net", None)
        if net is None:
            net = self.build_network(self.n_features_in_)
            net.load_state_dict(self.weights_)
            self._net = net
        return net.to(self.codes_device).eval()

    def to(self, device: torch.device | str) -> "LearnedSampler":
        super().to(device)
        self._net = None
        return self

    # -- drawing ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n: int, generator: torch.Generator | None, **options: Any) -> torch.Tensor:
        return self.restore(self.draw(self.network(), n, generator, **options))

    def _describe(self) -> dict[str, Any]:
        return {"iters": self.iters, "final_loss": self.history_[-1]["loss"] if self.history_ else None,
                "training_curve": self.history_}
