"""Model families by name (:data:`MODELS`), :func:`model_config` and :func:`build_model`.

Every family follows the contract in :mod:`latentatlas.models.base` (:class:`GenerativeModel`) and
registers its model class with its own config dataclass.
"""

from __future__ import annotations

from latentatlas.models.registry import MODELS, Family, build_model, check_image_shape, model_config, register_family
from latentatlas.models import ae as _ae  # noqa: E402,F401  (registers ae, vae, cvae)
from latentatlas.models import gan as _gan  # noqa: E402,F401  (registers gan, dcgan, wgan-gp, cgan)
from latentatlas.models import infogan as _infogan  # noqa: E402,F401  (registers infogan)
from latentatlas.models import aae as _aae  # noqa: E402,F401  (registers aae)
from latentatlas.models import vqvae as _vqvae  # noqa: E402,F401  (registers vqvae)
from latentatlas.models.ae import AE, VAE, AEConfig, VAEConfig  # noqa: E402
from latentatlas.models.base import Batch, GenerativeModel, Optim, Phase, Posterior  # noqa: E402
from latentatlas.models.gan import GAN, GANConfig  # noqa: E402
from latentatlas.models.infogan import InfoGAN, InfoGANConfig  # noqa: E402

__all__ = ["MODELS", "Family", "AE", "VAE", "AEConfig", "VAEConfig", "GAN", "GANConfig", "InfoGAN", "InfoGANConfig",
           "Batch", "GenerativeModel", "Optim", "Phase", "Posterior", "build_model", "check_image_shape",
           "model_config", "register_family"]
