"""Screenshots of TensorBoard showing a sweep that lrjax.writers wrote: every member's curves
and the HParams dashboard, for the README.

Run: ``python -m experiments.tensorboard_screenshot [--out docs/results/tensorboard]`` (about a
minute; needs ``tensorboard`` and a headless Chromium, on Debian ``apt-get install
chromium-headless-shell``). It trains 8 members of an MLP on scikit-learn digits (warmup +
cosine, a peak learning rate per member, evaluated every 50 steps) with a TensorBoard
:class:`lrjax.writers.Writer`, serves the log directory with ``tensorboard`` on 127.0.0.1 and
lets Chromium take the pictures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import optax

import lrjax
from lrjax import sweep
from lrjax.writers import TensorBoard, Writer

VIEWS = {  # file name: TensorBoard's page
    "scalars.png": "#scalars&tagFilter=loss%7Clearning_rate",
    "hparams.png": "#hparams",
}


def write_sweep(logdir: str, num_steps: int = 300) -> None:
    ds = lrjax.load_digits()

    def optimizer_kwargs(hp):
        schedule = lrjax.warmup_cosine_decay(hp["peak"], num_steps // 10, num_steps)
        return {"learning_rate": schedule, "momentum": 0.9}

    loss = optax.softmax_cross_entropy_with_integer_labels
    metrics = {"loss": loss, "accuracy": sweep.accuracy}
    sweep.train(
        lrjax.MLP(hidden=(64,)), loss,
        (ds.x_train, ds.y_train), optimizer=optax.sgd, optimizer_kwargs=optimizer_kwargs,
        hparams={"peak": np.geomspace(0.003, 3.0, 8).astype(np.float32)},
        num_steps=num_steps, batch_size=64,
        evaluation=sweep.Evaluation((ds.x_val, ds.y_val), every=50, metrics=metrics),
        options=sweep.Options(progress=False, hooks=[Writer(TensorBoard(logdir))]),
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(logdir: str, out: str, browser: str) -> list[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):  # wait (at most a minute) for the server to answer
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        files = []
        for name, page in VIEWS.items():
            path = os.path.join(out, name)
            subprocess.run(
                [browser, "--no-sandbox", "--hide-scrollbars", "--window-size=1400,900",
                 "--virtual-time-budget=20000", f"--screenshot={path}", url + page],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            files.append(path)
        return files
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(out: str = "docs/results/tensorboard", browser: str | None = None) -> list[str]:
    browser = browser or shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if browser is None:
        raise SystemExit("needs a headless Chromium: apt-get install chromium-headless-shell")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as logdir:
        write_sweep(logdir)
        return screenshot(logdir, out, browser)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/results/tensorboard")
    parser.add_argument("--browser", default=None, help="a Chromium binary")
    args = parser.parse_args()
    print("\n".join(main(args.out, args.browser)))
