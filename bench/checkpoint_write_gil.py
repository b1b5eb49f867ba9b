"""Does a checkpoint written on a background thread cost the training less than one written in line, when
the training's own thread is busy in Python, as it is on a GPU whose small networks leave the host launching
kernels?  Python threads share one interpreter lock (the GIL), and a write takes it for its Python parts and
at every return from the C code that releases it (hashing, writing each tensor).

An "epoch" here is a fixed amount of work on the main thread (``--epoch-ms`` alone), of one of two kinds: a
pure-Python loop (the GIL held throughout, the worst case) or a loop of small torch operations on a 64-element
tensor (each operation releases the GIL inside torch, as kernel launches do). Three ways, alternating
``--repeats`` times: the epoch alone; the epoch, then a checkpoint write in line (what the trainer does); the
epoch while the write runs on a background thread, joined at its end (what the trainer did at stop 39). The
write is that of the face beta-VAE (configs/celeba64-betavae.yaml) with its Adam state, 24.9 MiB, through
``checkpoint.save_checkpoint`` (content hash, torch.save, fsync, atomic rename).
    python bench/checkpoint_write_gil.py [--repeats 7] [--epoch-ms 600]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import torch

from budget import checkpoint_payload, config_model, warm_up
from timing import Timed, add_repeats, alternate, positive_int, protocol

ROOT = Path(__file__).resolve().parents[1]


def python_work(iterations: int) -> None:
    """Pure-Python work (the GIL held but for the interpreter's switches)."""
    for _ in range(iterations):
        sum(range(200))


def torch_work(iterations: int) -> None:
    """Small torch operations (each releases the GIL inside torch)."""
    x = torch.ones(64)
    for _ in range(iterations):
        x = torch.add(torch.mul(x, 0.999), 0.001)


def calibrated(work, seconds: float) -> int:
    """The iterations of ``work`` that take about ``seconds`` alone (a fixed amount of work per epoch)."""
    start = time.perf_counter()
    work(1000)
    return max(1, round(1000 * seconds / (time.perf_counter() - start)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epoch-ms", type=positive_int, default=600)
    add_repeats(parser, default=7)
    args = parser.parse_args()
    from latentatlas.training.checkpoint import save_checkpoint, snapshot

    model, _ = config_model(str(ROOT / "configs" / "celeba64-betavae.yaml"), (3, 64, 64))
    payload = snapshot(checkpoint_payload(model)[0])
    protocol("a checkpoint write in line against one on a background thread, beside GIL-bound work",
             {"checkpoint": "faces beta-VAE with Adam state, 24.9 MiB", "epoch": f"{args.epoch_ms} ms of work"},
             ("torch",))
    warm_up()
    with tempfile.TemporaryDirectory() as folder:
        def write() -> None:
            save_checkpoint(Path(folder) / "last.pt", payload)

        for name, work in (("Python loop", python_work), ("small torch ops", torch_work)):
            compare(name, work, write, args.epoch_ms / 1000, args.repeats)


def compare(name: str, work, write, epoch: float, repeats: int) -> None:
    """The epoch of ``work`` alone, then ``write()`` in line, and with ``write()`` on a thread during it."""
    n = calibrated(work, epoch)

    def in_line() -> None:
        work(n)
        write()

    def background() -> None:
        writer = threading.Thread(target=write)
        writer.start()
        work(n)
        writer.join()

    print(f"\nthe epoch's work: {name}")
    ways = ("epoch, then the write in line", "epoch with the write in the background")
    medians = alternate({"epoch alone": Timed(lambda: work(n)), ways[0]: Timed(in_line), ways[1]: Timed(background)},
                        repeats, baseline="epoch alone")
    for way in ways:
        print(f"{name}: the write costs the epoch {1000 * (medians[way] - medians['epoch alone']):.0f} ms ({way})")


if __name__ == "__main__":
    main()
