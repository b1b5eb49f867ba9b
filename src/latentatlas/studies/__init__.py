"""Studies: research questions about latent spaces, each one command that writes a table, a plot and
findings computed from the table into ``RUN/studies/NAME/`` (see :mod:`~latentatlas.studies.base`)."""

from latentatlas.studies import (components, diffusion_steps, gmm_k, interpolation, kde_bandwidth,  # noqa: F401
                                 latent_dim, regularisation, reprojection, self_consuming)  # (each registers its study)
from latentatlas.studies.base import STUDIES, Study, StudyContext, StudySettings
from latentatlas.studies.judge import Judge
from latentatlas.studies.runner import load_settings, run_study

__all__ = ["STUDIES", "Study", "StudyContext", "StudySettings", "Judge", "load_settings", "run_study"]
