"""Launched by test_interruptions.py, which kills it with SIGKILL at a random moment.

Usage: train_script.py RUN_DIR EPOCHS THREADS.  Trains (or resumes) the tiny VAE of the training tests with
slow checkpoint writes (a pause after the temporary file is written, before its rename), so that a kill
often lands inside one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from helpers import tiny_dataset, tiny_model, tiny_train_config  # noqa: E402

from latentatlas.training import train  # noqa: E402


def main() -> None:
    run_dir, epochs, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    real_save = torch.save

    def slow_save(*args, **kwargs):
        real_save(*args, **kwargs)
        time.sleep(0.2)

    torch.save = slow_save
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    train(tiny_model("vae"), tiny_dataset(), tiny_train_config(epochs=epochs), run_dir, seed=1, resume=resume)


if __name__ == "__main__":
    main()
