"""Smoke test of `make bench`: `python -m experiments.bench --quick` runs every row of a scanned
and a member-by-member workload, PyTorch's MLP losses agree with lrjax's, every workload's step
(CPU and GPU tables) is a valid user step, and the report flags a broken bound (never timing
thresholds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import lrjax
from experiments.bench import compare, report, workloads

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"lrjax", "sequential JAX", "PyTorch loop", "PyTorch vmap", report.BOUND}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    # A subprocess: the benchmark sets XLA's CPU device count, which is fixed once JAX starts.
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.bench", "--quick", "--workloads", "mlp,cnn",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_every_row_of_a_scanned_and_a_member_by_member_workload_runs(quick):
    result, _ = quick
    pytest.importorskip("torch")  # `make test` installs the bench extra: these rows run there
    # K = 2: two vectorized members share one device; two run one at a time get a device
    # each when the device count (one per core) divides 2.
    cores = len(os.sched_getaffinity(0))
    members_devices = cores if 2 % cores == 0 else 1
    for workload, how in (("mlp", "scan, 1 dev"), ("cnn", f"members, {members_devices} dev")):
        rows = [r for r in result["rows"] if r["workload"] == workload]
        assert {r["engine"] for r in rows} == ENGINES, (workload, rows)
        assert [r["how"] for r in rows if r["engine"] == "lrjax"] == [how]
        lr = next(r for r in rows if r["engine"] == "lrjax")  # timed beside the user's loop
        assert len(lr["paired_ratios"]) == result["meta"]["reps"] == 3
        assert lr["vs_sequential_jax"] == pytest.approx(np.median(lr["paired_ratios"]))
        bound = next(r for r in rows if r["engine"] == report.BOUND)
        assert set(bound["bound_layouts"]) == {"one device", "data-parallel"}
    for row in result["rows"]:
        assert row["model_steps_per_s"] > 0, row
    assert result["meta"]["num_devices"] == len(os.sched_getaffinity(0))
    for workload in ("mlp", "cnn"):
        checks = result["checks"][workload]
        assert checks["single_compile_s"] > 0 and checks["lrjax_compile_s"]["2"] > 0
        assert len(checks["guard"]["ratios"]) == 1


def test_pytorch_and_lrjax_losses_agree_on_the_mlp(quick):
    result, text = quick
    pytest.importorskip("torch")
    agreement = result["checks"]["mlp"]["agreement"]
    assert set(agreement["max_relative_gap"]) == {"sequential JAX", "PyTorch loop", "PyTorch vmap"}
    for name, gap in agreement["max_relative_gap"].items():
        assert gap["first_steps"] <= report.AGREE_RTOL, (name, gap)
    agree = [t for t in result["targets"] if "loss = lrjax loss" in t["target"]]
    assert len(agree) == 3 and all(t["pass"] for t in agree), agree
    assert "PyTorch loop loss = lrjax loss" in text


def test_report_names_machine_versions_load_compile_and_targets(quick):
    result, text = quick
    meta = result["meta"]
    assert meta["versions"]["jax"] and len(meta["load_average_before"]) == 3
    assert "Load average" in text and "Targets (issue 17)" in text
    assert "| workload | step | init | K=2: program | K=2: init |" in text
    for t in result["targets"]:
        assert f"{t['target']}: {t['shown']} -> {'PASS' if t['pass'] else 'MISS'}" in text


def row(engine, efficiency, k=8, vs_seq=1.2):
    return {
        "workload": "cnn", "k": k, "engine": engine, "how": "members, 1 dev",
        "model_steps_per_s": 10.0 * efficiency, "vs_sequential_jax": vs_seq,
        "vs_torch": float("nan"), "efficiency": efficiency, "mfu": 0.1, "compile_s": 1.0,
    }  # fmt: skip


def test_compare_puts_two_runs_side_by_side(quick):
    result, _ = quick
    before = json.loads(json.dumps(result))  # the same run, its lrjax rows twice as slow
    for row in before["rows"]:
        row["vs_sequential_jax"] /= 2
    del before["checks"]["cnn"]["guard"]
    text = compare.compare(before, result)
    for row in (r for r in result["rows"] if r["engine"] == "lrjax"):
        ratios = (
            f"{row['vs_sequential_jax'] / 2:.2f}x | {row['how']} | {row['vs_sequential_jax']:.2f}x"
        )
        assert f"| {row['workload']} | {row['k']} | {ratios} |" in text
    assert "`cnn` K = 2: before -, after" in text


def test_an_efficiency_above_one_is_flagged_as_a_broken_bound():
    assert "1.30 (broken bound)" in report.format_row(row("lrjax", 1.3))
    assert "(broken bound)" not in report.format_row(row("lrjax", 0.95))
    assert "(broken bound)" not in report.format_row(row(report.BOUND, 1.0))
    found = report.targets([row("lrjax", 1.3), row(report.BOUND, 1.0)], {}, False, False)
    bound = [t for t in found if "efficiency" in t["target"]]
    assert bound == [{
        "target": "cnn: K=8 (lrjax) vectorization efficiency >= 0.9 of the bound",
        "value": 1.3, "shown": "1.30 (broken bound)", "pass": False,
    }]  # fmt: skip


@pytest.mark.parametrize("gpu", [False, True])
def test_every_workload_is_a_valid_user_step(gpu):
    """Each workload's own step traces on one batch and keeps its state's shapes (CPU and GPU
    tables, which differ in K and steps only), and the GPU table reaches K = 1024 for the MLP
    and 128 for the others."""
    table = workloads.workloads(quick=False, gpu=gpu)
    assert set(table) == {"mlp", "resnet", "transformer", "cnn", "resblocks", "bilstm"}
    for w in table.values():
        data = w.load()
        init, step = workloads.task(w, tuple(a[:1] for a in data[:-1]))
        member = lrjax.engine.member_slice(workloads.members_for(w, 2), 1)
        batch = lrjax.engine.abstract(tuple(a[: w.batch] for a in data))
        # The Flax examples' code is not written for strict promotion (nn.avg_pool divides by
        # an int), nor need it be: the benchmark runs it as users do.
        with jax.numpy_dtype_promotion("standard"):
            state = jax.eval_shape(init, member)
            new, metrics = jax.eval_shape(step, state, batch, member)
        assert jax.tree.map(lambda a: (a.shape, a.dtype), new) == jax.tree.map(
            lambda a: (a.shape, a.dtype), state
        ), w.name
        assert set(metrics) == {"loss", "grad_norm"}
        top = max(w.ks)
        assert top == (1024 if gpu and w.name == "mlp" else 128 if gpu else top), (w.name, top)
    makefile = (ROOT / "Makefile").read_text()
    assert "bench-gpu:" in makefile and "--gpu --out docs/results/bench/gpu" in makefile


def test_pytorch_schedule_factor_matches_lrjax_schedule():
    w = workloads.workloads(quick=False, gpu=False)["mlp"]
    schedule = lrjax.warmup_cosine_decay(
        2.0, warmup_steps=workloads.warmup_steps(w), total_steps=w.steps
    )
    steps = np.arange(w.steps + 3)
    expected = np.array([2.0 * workloads.lr_factor(w, int(t)) for t in steps])
    np.testing.assert_allclose(np.asarray(schedule(steps)), expected, rtol=1e-5, atol=1e-7)


def test_workloads_reject_unknown_names():
    from experiments.bench import main

    with pytest.raises(ValueError, match="--workloads must name some of"):
        main.main(["--workloads", "mlp,cnn3d", "--out", "/nonexistent"])
