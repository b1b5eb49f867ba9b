"""latentatlas: train generative models on images, then map, sample and score their latent spaces."""

__version__ = "0.1.0"
