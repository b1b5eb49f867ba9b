"""Launched by test_ddp.py with ``python -m torch.distributed.run --nproc_per_node=2 --standalone``.

Usage: ddp_script.py RUN_DIR FAMILY.  Trains the tiny model data-parallel (gloo, CPU); rank 0 writes RUN_DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import ddp_train_config, family_options, tiny_dataset, tiny_model  # noqa: E402

from latentatlas.training import train  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    run_dir, family = Path(sys.argv[1]), sys.argv[2]
    model = tiny_model(family, **family_options(family))
    result = train(model, tiny_dataset(), ddp_train_config(), run_dir, seed=5)
    print(f"rank done: steps={result.steps} best={result.best_score:.6f}", flush=True)


if __name__ == "__main__":
    main()
