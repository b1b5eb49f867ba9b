"""2-D and 3-D maps of latent codes: PCA, t-SNE, Isomap, LLE (scikit-learn) and UMAP (``umap-learn``,
imported only when asked for)."""

from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

METHODS = ("pca", "tsne", "isomap", "lle", "umap")


def available_methods() -> list[str]:
    """The methods usable here: umap only when umap-learn is installed."""
    try:
        import umap  # noqa: F401  (only probing that it is installed)
    except ImportError:
        return [m for m in METHODS if m != "umap"]
    return list(METHODS)


def embed(z: torch.Tensor | np.ndarray, method: str = "pca", *, n_components: int = 2, seed: int = 0,
          n_neighbors: int = 15) -> np.ndarray:
    """Embed codes (N, d) in ``n_components`` (2 or 3) dimensions. -> float (N, n_components)."""
    x = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"z: expected codes (N, d), got shape {x.shape}")
    if n_components not in (2, 3):
        raise ValueError(f"n_components: expected 2 or 3, got {n_components!r}")
    neighbours = max(2, min(n_neighbors, x.shape[0] - 1))
    if method == "pca":
        from sklearn.decomposition import PCA

        model = PCA(n_components=min(n_components, x.shape[1]), random_state=seed)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        model = TSNE(n_components=n_components, random_state=seed, init="pca",
                     perplexity=float(min(30.0, max(2.0, (x.shape[0] - 1) / 3))))
    elif method == "isomap":
        from sklearn.manifold import Isomap

        model = Isomap(n_components=n_components, n_neighbors=neighbours)
    elif method == "lle":
        from sklearn.manifold import LocallyLinearEmbedding

        model = LocallyLinearEmbedding(n_components=n_components, n_neighbors=max(neighbours, n_components + 1),
                                       random_state=seed)
    elif method == "umap":
        try:
            import umap
        except ImportError as err:
            raise ImportError("method 'umap' needs umap-learn: pip install 'latentatlas[umap]'") from err
        model = umap.UMAP(n_components=n_components, random_state=seed, n_neighbors=neighbours)
    else:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    out = np.asarray(model.fit_transform(x), dtype=np.float64)
    if out.shape[1] < n_components:  # PCA of fewer dimensions than asked: pad with zeros
        out = np.hstack([out, np.zeros((out.shape[0], n_components - out.shape[1]))])
    return out
