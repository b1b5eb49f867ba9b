"""Feature networks shipped inside the package, so that a Fréchet distance means the same on every machine.

The ``classifier`` extractor trains on the reference data's training split on first use.  From the same
seed, another CPU (or a GPU) trains other weights, since its floating-point sums run in another order, and
so scores every sample set in another feature space.  For the data most scores are made against the trained
network therefore ships with latentatlas, under the very name its cache entry would have
(``weights/classifiers/mnist-<key>.pt`` and its ``.json`` protocol), and
:func:`latentatlas.metrics.cached_net.load_or_train_net` takes it before the cache:

- ``mnist``, the embedded 5,000 digits (the demo's data), default split, ``data_seed`` 0;
- ``mnist`` with ``data.root`` the full MNIST IDX files, default split, ``data_seed`` 0.

Other data, splits or seeds give other keys and are trained on first use as before.  A change to the
classifier or its training bumps ``CLASSIFIER_VERSION``, which changes the keys; then regenerate with::

    python -m latentatlas.metrics.shipped --mnist-root ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latentatlas.data.base import ImageDataset

SHIPPED_DIR = Path(__file__).parent / "weights"


def shipped_path(cache_file: Path) -> Path:
    """Where the net cached as ``<cache>/<folder>/<file>`` ships: ``SHIPPED_DIR/<folder>/<file>``."""
    return SHIPPED_DIR / cache_file.parent.name / cache_file.name


def shipped_nets() -> list[Path]:
    """The state dict files shipped, sorted."""
    return sorted(SHIPPED_DIR.glob("*/*.pt"))


def mnist_train_split(root: str | None) -> ImageDataset:
    """The training split the classifier of a default MNIST run is trained on (``root`` None: embedded)."""
    from latentatlas.config import DataConfig, build_section
    from latentatlas.data import load_dataset

    return load_dataset(build_section(DataConfig, {"name": "mnist", "root": root}, "data"), seed=0).part("train")


def ship_classifier(dataset: ImageDataset, *, seed: int = 0) -> Path:
    """Train the classifier for ``dataset`` here (ignoring any shipped one), copy it into ``SHIPPED_DIR`` with
    its protocol plus where it was trained (``trained_with``: versions, CPU, date); returns the .pt path."""
    from latentatlas.fileio import write_json
    from latentatlas.metrics.classifier import load_or_train_classifier
    from latentatlas.runs.store import environment

    with tempfile.TemporaryDirectory() as tmp:
        net = load_or_train_classifier(dataset, cache_dir=Path(tmp), seed=seed, use_shipped=False)
        (trained,) = Path(tmp, "classifiers").glob("*.pt")
        target = shipped_path(trained)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(trained, target)
    env = environment()
    made = {key: env[key] for key in ("latentatlas", "git_revision", "torch", "platform", "cpu", "created")}
    write_json(target.with_suffix(".json"), {**net.protocol, "trained_with": made})
    return target


def main(argv: list[str] | None = None) -> None:
    from latentatlas.metrics.classifier import load_classifier

    parser = argparse.ArgumentParser(prog="python -m latentatlas.metrics.shipped",
                                     description="Train the shipped MNIST feature classifiers again, into the "
                                                 "package (embedded digits, and full MNIST from --mnist-root).")
    parser.add_argument("--mnist-root", required=True, help="folder of the four full-MNIST IDX files")
    args = parser.parse_args(argv)
    for root in (None, args.mnist_root):
        path = ship_classifier(mnist_train_split(root))
        net = load_classifier(path)
        print(f"{path.name}: weights {net.weights_hash}, held-out accuracy {net.protocol['heldout_accuracy']:.4f}"
              f" ({net.protocol['n_train']} training images)")


if __name__ == "__main__":
    main()
