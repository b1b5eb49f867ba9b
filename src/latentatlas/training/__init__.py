"""Training loop and checkpoints."""

from latentatlas.training.checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from latentatlas.training.state import TrainingDiverged, TrainingInterrupted, TrainResult
from latentatlas.training.distributed import resolve_device
from latentatlas.training.trainer import train

__all__ = ["train", "resolve_device", "TrainResult", "TrainingDiverged", "TrainingInterrupted", "load_checkpoint",
           "load_model", "save_checkpoint", "save_model"]
