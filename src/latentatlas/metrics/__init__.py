"""Sample-quality metrics: feature extractors and float64 statistics, Fréchet distance, KID,
precision / recall / density / coverage, IS-style score, reconstruction error, memorisation.

Pure functions on features are the truth; argument order is always (real, fake).
"""

from latentatlas.metrics.evaluate import (METRICS, evaluate_file, evaluate_samples, load_samples,
                                          reference_from_spec)
from latentatlas.metrics.features import (EXTRACTORS, Reference, RunningStats, build_extractor, extract_features,
                                          features_to_stats, load_reference_npz, reference_prdc_radii,
                                          reference_stats)
from latentatlas.metrics.frechet import FrechetReference, frechet
from latentatlas.metrics.kid import kid
from latentatlas.metrics.memorization import data_copying_test, nearest_neighbours, nearest_train_distances
from latentatlas.metrics.monitor import SampleMonitor
from latentatlas.metrics.prdc import PRDCReference, knn_radii, prdc, prdc_real_radii
from latentatlas.metrics.scores import inception_score, reconstruction_errors

__all__ = ["EXTRACTORS", "METRICS", "FrechetReference", "PRDCReference", "SampleMonitor", "Reference", "RunningStats",
           "build_extractor", "data_copying_test", "evaluate_file", "evaluate_samples", "extract_features",
           "features_to_stats", "frechet", "inception_score", "kid", "knn_radii", "load_reference_npz",
           "load_samples", "nearest_neighbours", "nearest_train_distances", "prdc", "prdc_real_radii",
           "reconstruction_errors", "reference_from_spec", "reference_prdc_radii", "reference_stats"]
