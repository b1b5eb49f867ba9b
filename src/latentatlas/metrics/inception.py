"""The ``inception`` extractor: the FID Inception-v3 (2015-12-05 TensorFlow graph ported to PyTorch),
pool3 features (2048-d), as pytorch-fid computes them.

The network is defined here (no torchvision needed) with the module names of pytorch-fid's
``fid_inception_v3`` so that its weights file ``pt_inception-2015-12-05-6726825d.pth`` loads
strictly.  The weights are never downloaded: give the file with ``weights=`` or put it where
pytorch-fid / torch hub caches it (``$TORCH_HOME/hub/checkpoints``, default
``~/.cache/torch/hub/checkpoints``).  There is no fallback to another network.
Preprocessing as pytorch-fid: bilinear resize to 299x299, scale [0, 1] -> [-1, 1], grey -> RGB.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth",)   # pytorch-fid's release asset
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHT_FILES[0]


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _c(cin, cout, k, s=1, p=0) -> BasicConv2d:
    return BasicConv2d(cin, cout, k, s, p)


class Mixed(nn.Module):
    """An Inception block: named branches (chains of BasicConv2d, or split pairs) concatenated.

    ``branches``: name -> list of (module name, conv); a tuple of two convs at the end of a chain is
    applied to the same input and concatenated (InceptionE).  ``pool``: 'avg' (count_include_pad=False,
    then ``branch_pool``), 'max' (stride 1, then ``branch_pool``) or 'max_s2' (stride 2, no conv)."""

    def __init__(self, branches: list[list[tuple]], pool: str) -> None:
        super().__init__()
        self.chains: list[list] = []
        for chain in branches:
            names = []
            for item in chain:
                if isinstance(item[0], tuple):   # a split: ((name_a, conv_a), (name_b, conv_b))
                    for name, mod in item:
                        self.add_module(name, mod)
                    names.append(tuple(n for n, _ in item))
                else:
                    self.add_module(item[0], item[1])
                    names.append(item[0])
            self.chains.append(names)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for chain in self.chains:
            y = x
            for name in chain:
                y = torch.cat([getattr(self, n)(y) for n in name], 1) if isinstance(name, tuple) \
                    else getattr(self, name)(y)
            outs.append(y)
        if self.pool == "max_s2":
            outs.append(F.max_pool2d(x, 3, stride=2))
        else:
            p = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False) if self.pool == "avg" else F.max_pool2d(x, 3, 1, 1)
            outs.append(self.branch_pool(p))
        return torch.cat(outs, 1)


def inception_a(cin: int, pool_features: int) -> Mixed:
    m = Mixed([[("branch1x1", _c(cin, 64, 1))],
               [("branch5x5_1", _c(cin, 48, 1)), ("branch5x5_2", _c(48, 64, 5, p=2))],
               [("branch3x3dbl_1", _c(cin, 64, 1)), ("branch3x3dbl_2", _c(64, 96, 3, p=1)),
                ("branch3x3dbl_3", _c(96, 96, 3, p=1))]], "avg")
    m.branch_pool = _c(cin, pool_features, 1)
    return m


def inception_b(cin: int) -> Mixed:
    return Mixed([[("branch3x3", _c(cin, 384, 3, s=2))],
                  [("branch3x3dbl_1", _c(cin, 64, 1)), ("branch3x3dbl_2", _c(64, 96, 3, p=1)),
                   ("branch3x3dbl_3", _c(96, 96, 3, s=2))]], "max_s2")


def inception_c(cin: int, c7: int) -> Mixed:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    m = Mixed([[("branch1x1", _c(cin, 192, 1))],
               [("branch7x7_1", _c(cin, c7, 1)), ("branch7x7_2", _c(c7, c7, row[0], p=row[1])),
                ("branch7x7_3", _c(c7, 192, col[0], p=col[1]))],
               [("branch7x7dbl_1", _c(cin, c7, 1)), ("branch7x7dbl_2", _c(c7, c7, col[0], p=col[1])),
                ("branch7x7dbl_3", _c(c7, c7, row[0], p=row[1])), ("branch7x7dbl_4", _c(c7, c7, col[0], p=col[1])),
                ("branch7x7dbl_5", _c(c7, 192, row[0], p=row[1]))]], "avg")
    m.branch_pool = _c(cin, 192, 1)
    return m


def inception_d(cin: int) -> Mixed:
    return Mixed([[("branch3x3_1", _c(cin, 192, 1)), ("branch3x3_2", _c(192, 320, 3, s=2))],
                  [("branch7x7x3_1", _c(cin, 192, 1)), ("branch7x7x3_2", _c(192, 192, (1, 7), p=(0, 3))),
                   ("branch7x7x3_3", _c(192, 192, (7, 1), p=(3, 0))), ("branch7x7x3_4", _c(192, 192, 3, s=2))]],
                 "max_s2")


def inception_e(cin: int, pool: str) -> Mixed:
    def split(prefix: str) -> tuple:
        return ((f"{prefix}a", _c(384, 384, (1, 3), p=(0, 1))), (f"{prefix}b", _c(384, 384, (3, 1), p=(1, 0))))

    m = Mixed([[("branch1x1", _c(cin, 320, 1))],
               [("branch3x3_1", _c(cin, 384, 1)), split("branch3x3_2")],
               [("branch3x3dbl_1", _c(cin, 448, 1)), ("branch3x3dbl_2", _c(448, 384, 3, p=1)),
                split("branch3x3dbl_3")]], pool)
    m.branch_pool = _c(cin, 192, 1)
    return m


class FIDInceptionV3(nn.Module):
    """(B, C, H, W) in [0, 1] (C = 1 or 3) -> pool3 features (B, 2048)."""

    name = "inception"

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3, self.Conv2d_2a_3x3 = _c(3, 32, 3, s=2), _c(32, 32, 3)
        self.Conv2d_2b_3x3, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3 = _c(32, 64, 3, p=1), _c(64, 80, 1), _c(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = inception_a(192, 32), inception_a(256, 64), inception_a(288, 64)
        self.Mixed_6a = inception_b(288)
        self.Mixed_6b, self.Mixed_6c = inception_c(768, 128), inception_c(768, 160)
        self.Mixed_6d, self.Mixed_6e = inception_c(768, 160), inception_c(768, 192)
        self.Mixed_7a = inception_d(768)
        self.Mixed_7b, self.Mixed_7c = inception_e(1280, "avg"), inception_e(2048, "max")
        self.fc = nn.Linear(2048, 1008)
        self.weights_hash = "untrained"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def weight_search_paths() -> list[Path]:
    """Folders searched for the weights file: torch hub's checkpoint cache."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return [torch_home / "hub" / "checkpoints"]


def find_weights(weights: str | None) -> Path:
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights: no FID Inception weights file at {path}; download {WEIGHTS_URL}")
        return path
    for folder in weight_search_paths():
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"extractor='inception' needs the FID Inception-v3 weights file {WEIGHT_FILES[0]} (pytorch-fid's, 91 MB). "
        f"Download it from {WEIGHTS_URL} and put it in {weight_search_paths()[0]} (or pass weights=PATH). "
        "latentatlas does not download it and does not fall back to another network; "
        "offline, use extractor='classifier'.")


def load_fid_inception(weights: str | None = None) -> FIDInceptionV3:
    """The FID Inception network with its weights (``weights_only=True``); a clear error if absent."""
    path = find_weights(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = FIDInceptionV3()
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:   # shape mismatches
        raise ValueError(f"weights: {path} is not the FID Inception-v3 state dict ({exc})") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(f"weights: {path} is not the FID Inception-v3 state dict "
                         f"(missing {missing[:3]}..., unexpected {result.unexpected_keys[:3]}...)")
    model.weights_hash = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    log.info("FID Inception weights from %s (sha256 %s)", path, model.weights_hash)
    return model.eval()
