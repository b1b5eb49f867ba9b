"""Networks built from the image shape: strided conv nets and MLPs, for encoders, decoders (generators)
and discriminators, plus the one conditioning path of class-conditional families.

Images are (B, C, H, W) in [0, 1].  Encoders map them to (B, out_features) (``forward_features`` gives the
penultimate features, ``head`` the last linear layer); decoders map (B, latent_dim) to *logits* of shape
(B, C, H, W), and the model applies the sigmoid.  The conv net halves the spatial size with stride-2
convolutions while both sides stay even and larger than 4 (28 -> 14 -> 7, 32 -> 4, 64 -> 4); the decoder
mirrors it with transposed convolutions, the last of which makes the image channels (``direct_output``;
the alternative, a hidden full-resolution layer of ``width`` channels and a 3x3 conv, costs about twice
the time per step on a CPU, see ``DECODER_OUTPUTS``).  Normalisation is GroupNorm by default (per-sample,
so results do not depend on the batch or on how it is split across data-parallel ranks); discriminators
use none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("conv", "mlp")
NORMS = ("group", "batch", "none")
ACTIVATIONS = ("silu", "leaky_relu")
DECODER_OUTPUTS = ("transposed", "conv3x3")   # the conv decoder's last layer: see ConvDecoder
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


def norm_layer(kind: str, channels: int) -> nn.Module:
    """'group' (GroupNorm with up to 8 groups), 'batch' (BatchNorm2d) or 'none'."""
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm: expected one of {NORMS}, got {kind!r}")


def activation(kind: str) -> nn.Module:
    if kind == "silu":
        return nn.SiLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {kind!r}")


def stage_channels(width: int, stages: int) -> list[int]:
    """Channels after each stage: width, 2*width, ... capped at MAX_WIDTH_FACTOR * width."""
    return [width * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(stages)]


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features) with stride-2 conv blocks and a linear head."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, width: int, *, norm: str = "group",
                 act: str = "silu") -> None:
        super().__init__()
        stages = check_conv_shape(image_shape)
        channels, height, wide = image_shape
        layers: list[nn.Module] = []
        for c_out in stage_channels(width, stages):
            layers += [nn.Conv2d(channels, c_out, 4, stride=2, padding=1), norm_layer(norm, c_out), activation(act)]
            channels = c_out
        self.features = nn.Sequential(*layers)
        self.feature_dim = channels * (height >> stages) * (wide >> stages)
        self.head = nn.Linear(self.feature_dim, out_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> flattened last conv features (B, feature_dim)."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> logits (B, C, H, W): linear stem, then transposed convs mirroring the encoder.
    With ``direct_output`` ('transposed' in ``DECODER_OUTPUTS``) the last transposed conv makes the image
    channels itself (the DCGAN generator); without it ('conv3x3') it makes ``width`` channels at full
    resolution, normalised and activated, and a 3x3 conv makes the image channels: more capacity per step,
    but that layer and its 3x3 conv to one channel are most of the network's time on a CPU."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, width: int, *,
                 norm: str = "group", direct_output: bool = False) -> None:
        super().__init__()
        stages = check_conv_shape(image_shape)
        out_channels, height, wide = image_shape
        chans = stage_channels(width, stages)
        self.start_shape = (chans[-1], height >> stages, wide >> stages)
        self.stem = nn.Linear(latent_dim, math.prod(self.start_shape))
        layers: list[nn.Module] = [norm_layer(norm, chans[-1]), nn.SiLU()]
        pairs = list(zip(chans[::-1], chans[::-1][1:] + [width]))
        for i, (c_in, c_out) in enumerate(pairs):
            if direct_output and i == len(pairs) - 1:
                layers.append(nn.ConvTranspose2d(c_in, out_channels, 4, stride=2, padding=1))
                break
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), norm_layer(norm, c_out), nn.SiLU()]
        else:
            layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(z).view(z.shape[0], *self.start_shape))


def _mlp(sizes: list[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_features) through ``hidden_layers`` hidden layers of ``width`` units."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, width: int,
                 hidden_layers: int = 2, *, act: str = "silu") -> None:
        super().__init__()
        self.net = _mlp([math.prod(image_shape)] + [width] * hidden_layers + [out_features], act)
        self.feature_dim = width

    @property
    def head(self) -> nn.Module:
        return self.net[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last hidden layer's activations (B, width)."""
        return self.net[:-1](x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """(B, latent_dim) -> logits (B, C, H, W), mirroring :class:`MLPEncoder`."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, width: int,
                 hidden_layers: int = 2, *, act: str = "silu") -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = _mlp([latent_dim] + [width] * hidden_layers + [math.prod(image_shape)], act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


def build_encoder(architecture: str, image_shape: tuple[int, int, int], out_features: int, width: int,
                  hidden_layers: int = 2, *, norm: str = "group", act: str = "silu") -> nn.Module:
    """The encoder (or discriminator body) for ``architecture`` ('conv' or 'mlp')."""
    if architecture == "conv":
        return ConvEncoder(image_shape, out_features, width, norm=norm, act=act)
    if architecture == "mlp":
        return MLPEncoder(image_shape, out_features, width, hidden_layers, act=act)
    raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")


def build_decoder(architecture: str, image_shape: tuple[int, int, int], latent_dim: int, width: int,
                  hidden_layers: int = 2, *, norm: str = "group", direct_output: bool = False) -> nn.Module:
    """The decoder (generator) to logits for ``architecture`` ('conv' or 'mlp')."""
    if architecture == "conv":
        return ConvDecoder(image_shape, latent_dim, width, norm=norm, direct_output=direct_output)
    if architecture == "mlp":
        return MLPDecoder(image_shape, latent_dim, width, hidden_layers)
    raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every conv and linear layer of ``module``."""
    from torch.nn.utils.parametrizations import spectral_norm

    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


# -- the conditioning path (cgan, cvae, ...) -------------------------------------------------------------
def with_label_planes(x: torch.Tensor, y: torch.Tensor | None, n_classes: int | None) -> torch.Tensor:
    """Images (B, C, H, W) and labels (B,) -> (B, C + n_classes, H, W) with one-hot label planes appended;
    ``x`` unchanged when unconditional (``n_classes`` None)."""
    if not n_classes:
        return x
    planes = F.one_hot(y, n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, planes], dim=1)


def with_label_code(z: torch.Tensor, y: torch.Tensor | None, n_classes: int | None) -> torch.Tensor:
    """Codes (B, d) and labels (B,) -> (B, d + n_classes) with the one-hot label appended; ``z`` unchanged
    when unconditional."""
    if not n_classes:
        return z
    return torch.cat([z, F.one_hot(y, n_classes).to(z.dtype)], dim=1)


def conditioned_shape(image_shape: tuple[int, int, int], n_classes: int | None) -> tuple[int, int, int]:
    """The input shape of an encoder or discriminator that sees label planes."""
    c, h, w = image_shape
    return (c + (n_classes or 0), h, w)
