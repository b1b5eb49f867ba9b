"""The FID Inception extractor: missing weights give a clear error; a state dict in the cache loads."""

from __future__ import annotations

import pytest
import torch

from latentatlas.metrics.features import build_extractor, extract_features
from latentatlas.metrics.inception import WEIGHT_FILES, FIDInceptionV3


def test_missing_weights_error_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as err:
        build_extractor("inception")
    msg = str(err.value)
    assert WEIGHT_FILES[0] in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "classifier" in msg                                   # says what to use offline
    with pytest.raises(FileNotFoundError, match="weights"):
        build_extractor("inception", weights=str(tmp_path / "nope.pth"))


def test_weights_in_torch_hub_cache_load_strictly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / WEIGHT_FILES[0])
    ext = build_extractor("inception")
    assert ext.name == "inception" and len(ext.weights_hash) == 16
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert extract_features(ext, images).shape == (2, 2048)
    # a file that is not the FID network's state dict is refused
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not the FID Inception"):
        build_extractor("inception", weights=str(tmp_path / "other.pth"))
