"""Encoders and decoders built from the image shape: a strided conv net and an MLP.

Images are (B, C, H, W) in [0, 1].  Encoders map them to (B, out_features) (the caller splits mean and
log-variance); decoders map (B, latent_dim) to *logits* of shape (B, C, H, W) — the model applies the
sigmoid.  The conv net halves the spatial size with stride-2 convolutions while both sides stay even and
larger than 4 (28 -> 14 -> 7, 32 -> 4, 64 -> 4), with GroupNorm + SiLU blocks (no BatchNorm, so
per-sample results do not depend on the batch or on how it is split across data-parallel ranks); the
decoder mirrors it with transposed convolutions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ARCHITECTURES = ("conv", "mlp")
MAX_STAGES = 5
MAX_WIDTH_FACTOR = 8


def conv_stages(height: int, width: int) -> int:
    """Number of stride-2 stages for an image: halve while both sides are even and larger than 4."""
    stages = 0
    while stages < MAX_STAGES and height % 2 == 0 and width % 2 == 0 and min(height, width) > 4:
        height, width, stages = height // 2, width // 2, stages + 1
    return stages


def check_conv_shape(image_shape: tuple[int, int, int]) -> int:
    """Validate an image shape for the conv net and return its number of stages."""
    _, height, width = image_shape
    stages = conv_stages(height, width)
    if stages < 2:
        raise ValueError(
            f"image_shape: the conv architecture needs height and width divisible by 4 and at least 8 "
            f"(e.g. 28x28, 32x32, 64x64), got {height}x{width}; use architecture='mlp' or resize "
            f"(data.image_size)")
    return stages


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _channels(width: int, stages: int) -> list[int]:
    """Channels after each stage: width, 2*width, ... capped at MAX_WIDTH_FACTOR * width."""
    return [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(stages)]


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features) with stride-2 conv blocks and a linear head."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, width: int) -> None:
        super().__init__()
        stages = check_conv_shape(image_shape)
        channels, height, wide = image_shape
        layers: list[nn.Module] = []
        for c_out in _channels(width, stages):
            layers += [nn.Conv2d(channels, c_out, 4, stride=2, padding=1), _norm(c_out), nn.SiLU()]
            channels = c_out
        self.features = nn.Sequential(*layers)
        flat = channels * (height >> stages) * (wide >> stages)
        self.head = nn.Linear(flat, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> logits (B, C, H, W): linear stem, then transposed convs mirroring the encoder."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, width: int) -> None:
        super().__init__()
        stages = check_conv_shape(image_shape)
        out_channels, height, wide = image_shape
        chans = _channels(width, stages)
        self.start_shape = (chans[-1], height >> stages, wide >> stages)
        self.stem = nn.Linear(latent_dim, math.prod(self.start_shape))
        layers: list[nn.Module] = [_norm(chans[-1]), nn.SiLU()]
        for c_in, c_out in zip(chans[::-1], chans[::-1][1:] + [width]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), _norm(c_out), nn.SiLU()]
        layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(z).view(z.shape[0], *self.start_shape))


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features) through ``hidden_layers`` hidden layers of ``width`` units."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, width: int,
                 hidden_layers: int = 2) -> None:
        super().__init__()
        self.net = _mlp([math.prod(image_shape)] + [width] * hidden_layers + [out_features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """(B, latent_dim) -> logits (B, C, H, W), mirroring :class:`MLPEncoder`."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, width: int,
                 hidden_layers: int = 2) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = _mlp([latent_dim] + [width] * hidden_layers + [math.prod(image_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


def build_encoder(architecture: str, image_shape: tuple[int, int, int], out_features: int, width: int,
                  hidden_layers: int = 2) -> nn.Module:
    """The encoder for ``architecture`` ('conv' or 'mlp')."""
    if architecture == "conv":
        return ConvEncoder(image_shape, out_features, width)
    if architecture == "mlp":
        return MLPEncoder(image_shape, out_features, width, hidden_layers)
    raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")


def build_decoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int, width: int,
                  hidden_layers: int = 2) -> nn.Module:
    """The decoder (to logits) for ``architecture`` ('conv' or 'mlp')."""
    if architecture == "conv":
        return ConvDecoder(image_shape, latent_dim, width)
    if architecture == "mlp":
        return MLPDecoder(image_shape, latent_dim, width, hidden_layers)
    raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")
