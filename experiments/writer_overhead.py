"""The cost of watching a sweep: the same small sweep without a metric writer, with TensorBoard,
with MLflow (a local file store) and with both, interleaved (A, B, C, D, A, B, ...) in one
process; the ratio of medians to the run without a writer.

Run: ``python -m experiments.writer_overhead [--reps 7] [--steps 400] [--hidden 128]
[--batch 64]`` (a minute or two on 2 CPU cores). The sweep: ``lrjax.MLP(hidden=(h, h))`` on
scikit-learn digits, 8 learning rates, chunks of 50 steps with an evaluation after each (every
step's loss, gradient norm and learning rate of every member written: 8 x 3 scalars per step,
plus the evaluations). The writers' cost is per scalar written, not per FLOP, so the ratio falls
as the step's compute grows: compare ``--hidden 128`` with ``--hidden 512 --batch 256``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import optax

import lrjax
from lrjax import sweep
from lrjax.writers import MLflow, TensorBoard, Writer

VARIANTS = ("none", "tensorboard", "mlflow", "both")


def writers(variant: str, directory: str) -> list:
    out = []
    if variant in ("tensorboard", "both"):
        out.append(Writer(TensorBoard(os.path.join(directory, "tb"))))
    if variant in ("mlflow", "both"):
        out.append(Writer(MLflow(f"file:{os.path.join(directory, 'mlruns')}")))
    return out


def run(variant: str, num_steps: int, ds, hidden: int = 128, batch: int = 64) -> float:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        sweep.train(
            lrjax.MLP(hidden=(hidden, hidden)), optax.softmax_cross_entropy_with_integer_labels,
            (ds.x_train, ds.y_train), optimizer=optax.sgd,
            hparams={"learning_rate": np.geomspace(0.01, 1.0, 8).astype(np.float32)},
            num_steps=num_steps, batch_size=batch,
            evaluation=sweep.Evaluation((ds.x_val, ds.y_val), every=50),
            options=sweep.Options(progress=False, hooks=writers(variant, directory)),
        )  # fmt: skip
        return time.perf_counter() - start  # includes the writers' last flush (on_end)


def main(reps: int = 7, num_steps: int = 400, hidden: int = 128, batch: int = 64) -> dict:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's opt-in
    ds = lrjax.load_digits()
    for variant in VARIANTS:  # compile and import everything once
        run(variant, 50, ds, hidden, batch)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(reps):
        for variant in VARIANTS:
            times[variant].append(run(variant, num_steps, ds, hidden, batch))
    base = statistics.median(times["none"])
    ratios = {v: statistics.median(times[v]) / base for v in VARIANTS}
    for v in VARIANTS:
        print(f"{v:12s} median {statistics.median(times[v]):.3f} s  ratio {ratios[v]:.3f}  "
              f"runs {' '.join(f'{t:.3f}' for t in times[v])}")  # fmt: skip
    return ratios


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--hidden", type=int, default=128, help="the MLP's width")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    main(args.reps, args.steps, args.hidden, args.batch)
