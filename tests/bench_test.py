"""Smoke test of `make bench`: `python -m experiments.bench --quick` runs every row of every
workload and PyTorch's MLP losses agree with lrjax's (never timing thresholds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import bench

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"lrjax", "sequential JAX", "PyTorch loop", "PyTorch vmap", "one model, batch K*B"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    # A subprocess: the benchmark sets XLA's CPU device count, which is fixed once JAX starts.
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_every_row_of_every_workload_runs(quick):
    result, _ = quick
    pytest.importorskip("torch")  # `make test` installs the bench extra: these rows run there
    for workload in ("mlp", "resnet", "transformer"):
        engines = {r["engine"] for r in result["rows"] if r["workload"] == workload}
        assert engines == ENGINES, (workload, engines)
    for row in result["rows"]:
        assert row["model_steps_per_s"] > 0, row
    assert result["meta"]["num_devices"] == len(os.sched_getaffinity(0))


def test_pytorch_and_lrjax_losses_agree_on_the_mlp(quick):
    result, text = quick
    pytest.importorskip("torch")
    agreement = result["checks"]["mlp"]["agreement"]
    assert set(agreement["max_relative_gap"]) == {"sequential JAX", "PyTorch loop", "PyTorch vmap"}
    for name, gap in agreement["max_relative_gap"].items():
        assert gap["first_steps"] <= bench.AGREE_RTOL, (name, gap)
    agree = [t for t in result["targets"] if "loss = lrjax loss" in t["target"]]
    assert len(agree) == 3 and all(t["pass"] for t in agree), agree
    assert "PyTorch loop loss = lrjax loss" in text


def test_report_names_machine_versions_load_and_targets(quick):
    result, text = quick
    meta = result["meta"]
    assert meta["versions"]["jax"] and len(meta["load_average_before"]) == 3
    assert "Load average" in text and "Targets (issue 11)" in text
    for t in result["targets"]:
        assert f"{t['target']}: {t['shown']} -> {'PASS' if t['pass'] else 'MISS'}" in text


def test_pytorch_schedule_factor_matches_lrjax_schedule():
    import numpy as np

    import lrjax

    w = bench.workloads(quick=False, gpu=False)["mlp"]
    schedule = lrjax.warmup_cosine_decay(
        2.0, warmup_steps=bench.warmup_steps(w), total_steps=w.steps
    )
    steps = np.arange(w.steps + 3)
    expected = np.array([2.0 * bench.lr_factor(w, int(t)) for t in steps])
    np.testing.assert_allclose(np.asarray(schedule(steps)), expected, rtol=1e-5, atol=1e-7)


def test_workloads_reject_unknown_names():
    with pytest.raises(ValueError, match="--workloads must name some of"):
        bench.main(["--workloads", "mlp,cnn3d", "--out", "/nonexistent"])
