"""Smoke test of `make experiment` (quick gallery into tmp_path) and unit tests of its pieces."""

import re
import subprocess

import numpy as np
import pytest

import lrjax
from experiments import configs, gallery, plateau, results, run, snapshots
from experiments import pbt as pbt_part


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert run.main(["--config", "schedules", "--quick", "--out", str(out)]) == 0
    return out, configs.resolve("schedules", quick=True)


def test_gallery_writes_every_family_png_and_overview(quick_run):
    out, config = quick_run
    part = out / "schedules"
    assert len(config["families"]) == 17
    for name in [fam["file"] for fam in config["families"]] + ["overview.png"]:
        assert (part / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_values_csv_matches_calling_each_schedule(quick_run):
    out, config = quick_run
    columns = results.read_csv(out / "schedules" / "values.csv")
    entries = gallery.entries(config)
    assert list(columns) == ["step"] + [e["id"] for _, e in entries]
    steps = columns["step"].astype(int)
    np.testing.assert_array_equal(steps, np.arange(config["total_steps"] + 1))
    probe = [0, 1, config["warmup_steps"], steps[-1] // 2 + 1, steps[-1] - 1, steps[-1]]
    for _, e in entries:
        schedule = gallery.build(e["spec"])
        expected = np.array([schedule(int(t)) for t in probe], dtype=np.float32)
        # jit+vmap and eager calls may round differently (fused ops): allow 2 ulp at peak 1.0,
        # which matters only where a value near 0 comes out of a difference like 1 - t/T.
        np.testing.assert_allclose(
            columns[e["id"]][probe], expected, rtol=1e-6, atol=2**-22, err_msg=e["id"]
        )


def test_table_has_a_row_per_schedule_at_the_chosen_steps(quick_run):
    out, config = quick_run
    table = (out / "schedules" / "table.md").read_text().splitlines()
    T, W = config["total_steps"], config["warmup_steps"]
    assert table[0] == (
        f"| family | schedule | 0 | 1 | W={W} | T/4={T // 4} | T/2={T // 2} | 3T/4={3 * T // 4} "
        f"| T-1={T - 1} | T={T} |"
    )
    assert len(table) == 2 + len(gallery.entries(config))
    assert table[2].startswith("| Constant | constant(1.0) | 1 | 1 |")


def test_reports_exist_and_their_images_resolve(quick_run):
    out, config = quick_run
    part_report = (out / "schedules" / "report.md").read_text()
    assert part_report.startswith("## Schedule gallery (quick)")
    assert "| family | schedule |" in part_report
    top = (out / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", top)
    assert len(images) == 1 + len(config["families"])
    for target in images:
        assert (out / target).is_file(), target
    assert results.read_json(out / "schedules" / "config.json") == config
    assert results.read_json(out / "schedules" / "summary.json")["non_finite"] == []


def test_rerun_skips_finished_part_unless_config_changes(quick_run, capsys):
    out, config = quick_run
    report = out / "schedules" / "report.md"
    before = report.stat().st_mtime_ns
    assert run.main(["--config", "schedules", "--quick", "--out", str(out)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert report.stat().st_mtime_ns == before
    assert run.is_done(config, out / "schedules")
    assert not run.is_done(configs.resolve("schedules"), out / "schedules")


def test_make_experiment_passes_its_variables_as_flags():
    # the README's commands: `make experiment`, `CONFIG=schedules QUICK=1`, `ARGS=--force`, ...
    def command(*variables):  # the command line make would run, after the interpreter
        make = ["make", "--no-print-directory", "-n", "experiment", *variables]
        lines = subprocess.run(make, capture_output=True, text=True, check=True).stdout
        return " ".join(lines.strip().splitlines()[-1].split()[1:])

    assert command() == "-m experiments.run"
    assert (
        command("CONFIG=schedules", "QUICK=1") == "-m experiments.run --config 'schedules' --quick"
    )
    assert command("ARGS=--force", "QUICK=0") == "-m experiments.run --force"
    assert command("FORCE=1", "DATASET=mnist", "DATA_DIR=/d", "SNAPSHOT=", "OUT=o") == (
        "-m experiments.run --force --out 'o' --dataset 'mnist' --data-dir '/d' --snapshot ''"
    )
    assert command("CONFIG=plateau", "ARGS=--config.num_steps=200 --config.seeds=[0]") == (
        "-m experiments.run --config 'plateau' --config.num_steps=200 --config.seeds=[0]"
    )
    args, overrides = run._parse(
        ["--config", "a,b", "--config", "c", "--config.x.y", "2", "--config.z=[1, 2]", "--quick"]
    )
    assert (args.config, args.quick, args.force) == (["a", "b", "c"], True, False)
    assert overrides == {"x.y": "2", "z": "[1, 2]"}


def test_unknown_config_is_rejected():
    with pytest.raises(ValueError, match=r"config must be one of schedules, .*; got 'nope'"):
        configs.resolve("nope")
    assert configs.part_name("experiments/configs/plateau.py") == "plateau"


def test_override_typos_and_wrong_types_are_errors_naming_the_key(capsys):
    with pytest.raises(
        ValueError,
        match=r"--config.num_step: plateau has no key 'num_step'; "
        r"did you mean num_steps\?",
    ):
        configs.resolve("plateau", quick=True, overrides={"num_step": "200"})
    with pytest.raises(
        ValueError,
        match=r"no part of plateau, pbt has key 'plateau.factr'; "
        r"did you mean plateau.factor\?",
    ):
        configs.resolve_all(["plateau", "pbt"], overrides={"plateau.factr": "0.5"})
    with pytest.raises(
        ValueError,
        match=r"--config.num_steps: '2.5' is not of the field's "
        r"type, int \(config: 150\)",
    ):
        configs.resolve("plateau", quick=True, overrides={"num_steps": "2.5"})
    with pytest.raises(
        ValueError,
        match=r"--config.plateau is a group of settings; override "
        r"its fields: plateau.mode, plateau.factor",
    ):
        configs.resolve("plateau", overrides={"plateau": "{}"})
    with pytest.raises(ValueError, match=r"--config.quick: part, runner, quick are chosen by"):
        configs.resolve("plateau", overrides={"quick": "true"})
    # from the command line: exit status 2 and the message, before anything runs
    assert run.main(["--config", "plateau", "--config.num_step=200"]) == 2
    assert "plateau has no key 'num_step'; did you mean num_steps?" in capsys.readouterr().err


def test_overrides_apply_to_the_parts_that_have_the_key():
    plateau, gallery = configs.resolve_all(
        ["plateau", "schedules"],
        quick=True,
        overrides={
            "num_steps": "60",
            "plateau.factor": "0.5",
            "seeds": "[0, 1]",
            "model_title": "MLP",
            "momentum": "1",
        },
    )
    assert plateau["num_steps"] == 60 and plateau["plateau"]["factor"] == 0.5
    assert plateau["seeds"] == [0, 1] and plateau["model_title"] == "MLP"
    assert plateau["momentum"] == 1.0 and isinstance(plateau["momentum"], float)
    assert set(plateau["overrides"]) == {
        "num_steps",
        "plateau.factor",
        "seeds",
        "model_title",
        "momentum",
    }
    assert "num_steps" not in gallery and "overrides" not in gallery
    assert configs.resolve("plateau") == configs.resolve("plateau", overrides={})


def test_build_nested_spec_and_evaluate_match_direct_calls():
    spec = {
        "fn": "warmup",
        "args": {
            "schedule": {"fn": "cosine_decay", "args": {"init_value": 1.0, "decay_steps": 90}},
            "warmup_steps": 10,
        },
    }
    schedule = gallery.build(spec)
    direct = lrjax.warmup(lrjax.cosine_decay(1.0, 90), 10)
    steps = gallery.step_grid(100)
    values = gallery.evaluate(schedule, steps)
    assert values.dtype == np.float32 and values.shape == (101,)
    np.testing.assert_allclose(values, [direct(int(t)) for t in steps], rtol=1e-6)
    with pytest.raises(ValueError, match=r"spec fn must name a function of lrjax.schedules"):
        gallery.build({"fn": "no_such_schedule", "args": {}})


def test_markdown_table_and_rebase_links():
    table = results.markdown_table(["name", "lr"], [["a", 0.123456], ["b", 1e-6]])
    assert table.splitlines() == [
        "| name | lr |",
        "| --- | ---: |",
        "| a | 0.1235 |",
        "| b | 1e-06 |",
    ]
    md = "![x](fig.png) [csv](values.csv) [web](https://a.b/c) [top](#top)"
    assert results.rebase_links(md, "part") == (
        "![x](part/fig.png) [csv](part/values.csv) [web](https://a.b/c) [top](#top)"
    )


# ---------------------------------------------------------------------------------------------
# Smoke test of the study's parts 2-8, quick size, one results folder.

STUDY_PARTS = [part for part in configs.PARTS if part != "schedules"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    assert run.main(["--config", ",".join(STUDY_PARTS), "--quick", "--out", str(out)]) == 0
    return out


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("part", STUDY_PARTS)
def test_study_part_writes_its_files_and_images_resolve(study_run, part):
    d = study_run / part
    config = configs.resolve(part, quick=True)
    assert results.read_json(d / "config.json") == config
    assert results.read_json(d / "summary.json")
    report = (d / "report.md").read_text()
    assert report.startswith(f"## {config['title']} (quick)")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert images
    for target in images:
        assert _is_png(d / target), target
    assert any(d.glob("*.jsonl")) or any(d.glob("*.csv"))


def test_parts_run_after_the_parts_they_read():
    todo = [configs.resolve(p, quick=True) for p in STUDY_PARTS]
    order = [c["part"] for c in run.execution_order(todo)]
    assert order.index("schedule_comparison") < order.index("range_test")
    assert order[2:] == STUDY_PARTS[2:]


def test_schedule_comparison_summary_matches_its_records(study_run):
    d = study_run / "schedule_comparison"
    config = configs.resolve("schedule_comparison", quick=True)
    mlp = results.read_json(d / "summary.json")["models"]["mlp"]
    assert set(mlp["families"]) == set(config["families"]) and len(config["families"]) >= 10
    rows = results.read_jsonl(d / "metrics_mlp.jsonl")
    assert len(rows) == len(config["families"]) * len(config["peak_lrs"]["mlp"])
    for name, fam in mlp["families"].items():
        assert fam["best_lr"] in config["peak_lrs"]["mlp"]
        assert 0.0 <= fam["test_acc_mean"] <= 1.0
        mine = [r for r in rows if r["family"] == name and r["peak_lr"] == fam["best_lr"]]
        # Chosen on validation: the best LR's final validation accuracy is the highest.
        val = {r["peak_lr"]: r["val_accuracy"][-1] for r in rows if r["family"] == name}
        assert mine[0]["val_accuracy"][-1] == max(val.values())
    constant = next(r for r in rows if r["family"] == "constant")
    np.testing.assert_allclose(constant["learning_rate"], constant["peak_lr"], rtol=1e-5)
    cosine = next(r for r in rows if r["family"] == "cosine")
    assert cosine["learning_rate"][0] == pytest.approx(cosine["peak_lr"], rel=1e-5)
    assert cosine["learning_rate"][-1] < 1e-3 * cosine["peak_lr"]
    assert mlp["ranking"][0] == mlp["best_family"]
    table = (d / "table_mlp.md").read_text().splitlines()
    assert len(table) == 2 + len(config["families"])


def test_range_test_suggestions_and_missing_reference(study_run):
    summary = results.read_json(study_run / "range_test" / "summary.json")
    assert set(summary["classic"]["suggestions"]) == {"steepest", "valley", "minimum", "robust"}
    assert summary["parallel"]["suggestion"] in summary["parallel"]["learning_rates"]
    # The quick schedule comparison trains the MLP only, so there is no CNN best LR to compare.
    assert summary["part3_reference"] is None
    assert "not compared" in (study_run / "range_test" / "report.md").read_text()


def test_range_test_table_compares_with_part3():
    from experiments import range_test

    ref = {"constant_lr": 0.1, "best_family": "cosine", "best_family_lr": 0.316}
    table = range_test._table({"steepest": 1.0, "parallel (min val loss)": 0.1}, ref)
    assert "| steepest | 1 | +1.00 | +0.50 |" in table
    assert "| parallel (min val loss) | 0.1 | +0.00 | -0.50 |" in table


def test_optimizers_summary(study_run):
    config = configs.resolve("optimizers", quick=True)
    summary = results.read_json(study_run / "optimizers" / "summary.json")["optimizers"]
    assert list(summary) == [o["name"] for o in config["optimizers"]]
    for per in summary.values():
        assert list(per) == config["schedules"]
        for s in per.values():
            assert s["width_decades"] >= 0.0
            assert s["range"][0] <= s["best_lr"] <= s["range"][1]


def test_batch_size_summary(study_run):
    config = configs.resolve("batch_size", quick=True)
    summary = results.read_json(study_run / "batch_size" / "summary.json")
    assert summary["batch_sizes"] == config["batch_sizes"]
    assert all(lr in config["learning_rates"] for lr in summary["best_lr"])
    assert np.isfinite(summary["scaling"]["slope"])
    assert summary["members"] == len(config["batch_sizes"]) * len(config["learning_rates"])


def test_search_summary(study_run):
    pytest.importorskip("optuna")
    config = configs.resolve("search", quick=True)
    summary = results.read_json(study_run / "search" / "summary.json")["methods"]
    assert list(summary) == config["methods"]
    trials = results.read_jsonl(study_run / "search" / "trials.jsonl")
    n = config["rounds"] * config["batch"]
    assert len(trials) == n * len(config["methods"])
    grid = [t for t in trials if t["method"] == "grid"]
    assert sorted((t["lr"], t["warmup"], t["wd"]) for t in grid) == sorted(
        (a, b, c)
        for a in config["grid"]["lr"]
        for b in config["grid"]["warmup"]
        for c in config["grid"]["wd"]
    )
    for m in summary.values():
        assert len(m["best_so_far"]) == n
        assert np.all(np.diff(m["best_so_far"]) >= 0)


def test_snapshots_summary_and_curves(study_run):
    config = configs.resolve("snapshots", quick=True)
    d = study_run / "snapshots"
    summary = results.read_json(d / "summary.json")
    T, M, swa = config["num_steps"], config["num_cycles"], config["swa"]
    assert summary["snapshot_steps"] == list(lrjax.snapshot_steps(T, M))
    start = summary["swa_start"]
    assert summary["swa_count"] == (T - start) // swa["every"] + 1
    assert set(summary["methods"]) == {key for key, _ in snapshots.METHODS}
    for m in summary["methods"].values():
        assert m["best_lr"] in config["peak_lrs"]
        assert 0.0 <= m["test_acc_mean"] <= 1.0 and m["test_nll_mean"] > 0.0
    curve = summary["snapshot_curve_test"]
    assert np.shape(curve["ensemble_acc"]) == (len(config["seeds"]), M)
    # The ensemble of the last one snapshot is the last snapshot alone.
    np.testing.assert_allclose(
        np.asarray(curve["ensemble_nll"])[:, 0], np.asarray(curve["single_nll"])[:, -1], rtol=1e-5
    )
    rows = results.read_jsonl(d / "evaluations.jsonl")
    assert len(rows) == len(snapshots.METHODS) * len(config["peak_lrs"]) * len(config["seeds"])
    members = results.read_jsonl(d / "metrics.jsonl")
    snap = next(r for r in members if r["schedule"] == "snapshot")
    lr = np.asarray(snap["learning_rate"])
    assert lr[0] == pytest.approx(snap["peak_lr"], rel=1e-5)
    for n in summary["snapshot_steps"][:-1]:  # each cycle restarts at the peak
        assert lr[n] == pytest.approx(snap["peak_lr"], rel=1e-5) and lr[n - 1] < lr[n] / 100
    assert (
        len(results.read_jsonl(d / "metrics_independent.jsonl"))
        == len(config["peak_lrs"]) * len(config["seeds"]) * M
    )


def test_snapshots_on_a_batchnorm_cnn_recompute_swa_statistics(study_run):
    summary = results.read_json(study_run / "snapshots_bn" / "summary.json")
    assert summary["batch_norm"] and summary["dataset"] == "digits"
    assert set(summary["methods"]) == {key for key, _ in snapshots.METHODS} | {"swa_stale_bn"}
    report = (study_run / "snapshots_bn" / "report.md").read_text()
    assert "statistics are recomputed on the training data" in report
    plain = (study_run / "snapshots" / "report.md").read_text()
    assert "The model has no batch norm" in plain


def test_snapshots_rejects_unequal_budgets():
    config = configs.resolve("snapshots", quick=True)
    with pytest.raises(ValueError, match="num_cycles 7 must divide num_steps 120"):
        snapshots.check({**config, "num_cycles": 7})


def test_plateau_summary_reads_part3_and_records_the_lr_used(study_run):
    config = configs.resolve("plateau", quick=True)
    d = study_run / "plateau"
    summary = results.read_json(d / "summary.json")
    part3 = results.read_json(study_run / "schedule_comparison" / "summary.json")
    # Same quick budget as part 3, so its winner is the fixed schedule compared with.
    assert summary["reference"]["from_part3"]
    assert summary["reference"]["family"] == part3["models"]["mlp"]["best_family"]
    assert set(summary["methods"]) == {"plateau", part3["models"]["mlp"]["best_family"], "constant"}
    p = config["plateau"]
    for row in results.read_jsonl(d / "metrics_plateau.jsonl"):
        lr = np.asarray(row["learning_rate"], dtype=float)
        lr = lr[np.isfinite(lr)]  # cut off where a member diverged
        # Constant LR times the plateau scale: starts at the initial LR, only ever cut by factor.
        assert lr[0] == pytest.approx(lr.max()) and np.all(np.diff(lr) <= 1e-9)
        for t in np.flatnonzero(np.diff(lr) < 0):
            expected = max(lr[t] * p["factor"], p["min_lr"])
            assert lr[t + 1] == pytest.approx(expected, rel=1e-4)
    assert "plateau.png" in (d / "report.md").read_text()


def test_plateau_reference_falls_back_with_a_reason(tmp_path):
    config = configs.resolve("plateau", quick=True)
    out = tmp_path / "plateau"
    ref = plateau.reference(config, out)
    assert ref["family"] == "warmup_cosine" and "no schedule_comparison results" in ref["reason"]
    (tmp_path / "schedule_comparison").mkdir()
    summary = {"num_steps": 999, "models": {"mlp": {"best_family": "sgdr", "families": {}}}}
    results.write_json(tmp_path / "schedule_comparison" / "summary.json", summary)
    assert "used 999 steps, not 150" in plateau.reference(config, out)["reason"]


def test_plateau_reductions_count_lr_cuts():
    lr = np.array([[1.0, 1.0, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, np.nan]])
    np.testing.assert_array_equal(plateau.reductions(lr), [2, 0])


def test_dataset_override_reaches_every_training_part(tmp_path):
    idx_dir = str(tmp_path / "mnist")
    for part in configs.PARTS:
        config = configs.resolve(part, quick=True, dataset="mnist", data_dir=idx_dir)
        if part == "schedules":
            assert "dataset" not in config  # the gallery trains nothing
        else:
            assert config["dataset"] == "mnist"
            assert config["dataset_kwargs"] == {"data_dir": idx_dir}


def test_dataset_and_config_overrides_reach_the_part(tmp_path):
    # a smoke run of one part with a command-line dataset and a dotted config override
    argv = [
        "--config",
        "experiments/configs/plateau.py",
        "--quick",
        "--out",
        str(tmp_path),
        "--dataset",
        "digits",
        "--config.num_steps=60",
        "--config.plateau.factor=0.5",
    ]
    assert run.main(argv) == 0
    saved = results.read_json(tmp_path / "plateau" / "config.json")
    assert saved["dataset"] == "digits"
    assert saved["num_steps"] == 60 and saved["plateau"]["factor"] == 0.5
    rows = results.read_jsonl(tmp_path / "plateau" / "metrics_plateau.jsonl")
    assert {len(row["learning_rate"]) for row in rows} == {60}
    for row in rows:  # every cut of the LR is by the overridden factor
        lr = np.asarray(row["learning_rate"], dtype=float)
        lr = lr[np.isfinite(lr)]
        for t in np.flatnonzero(np.diff(lr) < 0):
            assert lr[t + 1] == pytest.approx(max(lr[t] * 0.5, 1e-5), rel=1e-4)
    report = (tmp_path / "plateau" / "report.md").read_text()
    assert "ARGS='--config.num_steps=60 --config.plateau.factor=0.5'" in report
    # the same command again finds its results; without the overrides it is another config
    assert run.main(argv) == 0
    assert not run.is_done(
        configs.resolve("plateau", quick=True, dataset="digits"), tmp_path / "plateau"
    )


def test_pbt_summary_records_lineage_and_the_schedule_each_update_used(study_run):
    config = configs.resolve("pbt", quick=True)
    d = study_run / "pbt"
    summary = results.read_json(d / "summary.json")
    part3 = results.read_json(study_run / "schedule_comparison" / "summary.json")
    assert summary["reference"]["family"] == part3["models"]["mlp"]["best_family"]
    assert set(summary["methods"]) == {"fixed", "pbt"}
    rows = results.read_jsonl(d / "metrics.jsonl")
    ready, T = config["pbt"]["ready"], config["num_steps"]
    assert summary["pbt_steps"] == list(range(0, T, ready))
    for found in summary["discovered"]:
        # The discovered schedule is the LR each update of the member's line actually used.
        for j, slot in enumerate(found["ancestry"]):
            used = rows[slot]["learning_rate"][j * ready : (j + 1) * ready]
            np.testing.assert_allclose(used, found["lr"][j * ready : (j + 1) * ready], rtol=1e-4)
        assert found["ancestry"][-1] == found["member"]
        lo, hi = (
            config["pbt"]["space"]["momentum"]["low"],
            config["pbt"]["space"]["momentum"]["high"],
        )
        assert all(lo - 1e-6 <= m <= hi + 1e-6 for m in found["momentum"][ready:])
    # Fixed members never take part: their parents are themselves.
    L = len(config["learning_rates"])
    for k, row in enumerate(rows[: L * len(config["seeds"])]):
        assert row["parents"] == [k] * (len(summary["pbt_steps"]) - 1)
    assert summary["methods"]["pbt"]["test_acc_seeds"]


def test_pbt_verdict_flips_with_the_numbers():
    def summary(pbt, fixed):
        methods = {"pbt": {"test_acc_seeds": pbt, "label": "PBT"},
                   "fixed": {"test_acc_seeds": fixed, "label": "WSD"}}  # fmt: skip
        return {"methods": methods}

    high, low = [0.93, 0.94, 0.92], [0.88, 0.89, 0.87]
    assert pbt_part.verdict(summary(high, low)).startswith("**PBT beats WSD**")
    losing = pbt_part.verdict(summary(low, high))
    assert losing.startswith("**PBT loses to WSD**") and "it loses here" in losing
    # A gap inside the seed spread is a tie, whichever side is ahead.
    assert pbt_part.verdict(summary([0.90, 0.95, 0.85], [0.91, 0.92, 0.93])).startswith(
        "**PBT ties with WSD**"
    )


def test_pbt_describes_warmup_and_decay():
    T = 100
    assert pbt_part.describe(np.r_[np.full(10, 0.1), np.ones(70), np.full(20, 0.2)])["shape"] == (
        "warmup, then decay"
    )
    assert pbt_part.describe(np.geomspace(1.0, 0.01, T))["shape"] == "decay"
    assert pbt_part.describe(np.r_[np.full(10, 0.1), np.ones(90)])["shape"] == "warmup, no decay"
    assert pbt_part.describe(np.full(T, 0.3))["shape"].startswith("flat")


# ---------------------------------------------------------------------------------------------
# The finetune part


def test_finetune_summary_pretrained_file_and_verdicts(study_run):
    from experiments import finetune

    config = configs.resolve("finetune", quick=True)
    d = study_run / "finetune"
    summary = results.read_json(d / "summary.json")
    settings = summary["settings"]
    for key in ("finetune", "frozen", "scratch", "llrd", "no_llrd", *config["recipes"]):
        assert settings[key]["learning_rate"] in config["learning_rates"], key
        assert len(settings[key]["test"]) == len(config["seeds"])
    assert settings["frozen"]["variant"] == "frozen"
    assert settings["llrd"]["variant"] != "γ=1" and settings["no_llrd"]["variant"] == "γ=1"
    # the best fine-tuning setting is the best of the tuned grid on validation
    grid = [v for per in summary["val_acc_grid"].values() for name, row in per.items()
            if name != "frozen" for v in row]  # fmt: skip
    assert settings["finetune"]["val_mean"] == max(grid)
    # the saved pretrained model has the MLP's layers; the report's verdicts are the summary's
    pretrained = finetune.load_pretrained(d / "pretrained.npz")
    assert sorted(pretrained) == [f"Dense_{i}" for i in range(len(config["hidden"]) + 1)]
    report = (d / "report.md").read_text()
    for sentence in finetune.verdicts(summary):
        assert sentence in report


def _setting(mean, std, **extra):
    return {"index": [0, 0, 0], "test_mean": mean, "test_std": std, **extra}


def test_finetune_verdicts_flip_with_the_numbers():
    from experiments import finetune

    def summary(a, b):
        return {"settings": {
            "finetune": _setting(a, 0.01), "scratch": _setting(b, 0.01),
            "frozen": _setting(b, 0.01), "llrd": _setting(a, 0.01, variant="γ=0.5"),
            "no_llrd": _setting(b, 0.01), "warmup": _setting(a, 0.01),
            "no_warmup": _setting(b, 0.01), "linear": _setting(a, 0.01),
            "cosine": _setting(b, 0.01),
        }}  # fmt: skip

    up, down, tie = (finetune.verdicts(summary(*ab)) for ab in [(0.9, 0.8), (0.8, 0.9),
                                                                 (0.81, 0.8)])  # fmt: skip
    assert up[0].startswith("**Pretraining helps**") and "+10.0 points" in up[0]
    assert down[0].startswith("**Pretraining hurts here**") and "-10.0 points" in down[0]
    assert tie[0].startswith("**Pretraining does not clearly help**")  # 1 point < 2 stds
    assert up[1].startswith("**Fine-tuning the whole network beats freezing")
    assert down[1].startswith("**Freezing the backbone beats fine-tuning it**")
    assert up[2].startswith("**Layer-wise LR decay helps**, best at γ=0.5 (")
    assert down[2].startswith("**Layer-wise LR decay hurts here**")
    assert tie[2].startswith("**Layer-wise LR decay makes no measurable difference**")
    assert up[3].startswith("**Warmup helps**") and down[3].startswith("**Warmup hurts here**")
    assert down[4].startswith("**Cosine decay beats linear**")
    wide = summary(0.9, 0.8)
    wide["lr_width_decades"] = {"γ=1": 0.5, "γ=0.25": 1.5, "frozen": 2.0}
    assert any(v.startswith("**LR tolerance**: within one validation point of its best, γ=0.25 "
                            "tolerates 1.50 decades of peak LR and γ=1 0.50") for v in
               finetune.verdicts(wide))  # fmt: skip
    # a gap within one accuracy point is a tie even when the seeds agree exactly
    close = summary(0.905, 0.9)
    for setting in close["settings"].values():
        setting["test_std"] = 0.0
    assert finetune.verdicts(close)[0].startswith("**Pretraining does not clearly help**")
    # a comparison the grid cannot make (no warmup fraction > 0) is left out
    no_warmup = summary(0.9, 0.8)
    no_warmup["settings"]["warmup"] = {"index": None}
    assert not any("Warmup" in v for v in finetune.verdicts(no_warmup))


def test_lr_free_summary_matches_its_records(study_run):
    from experiments import lr_free

    d = study_run / "lr_free"
    config = configs.resolve("lr_free", quick=True)
    summary = results.read_json(d / "summary.json")
    assert summary["verdicts"] == lr_free.verdicts(summary)
    mlp = summary["models"]["mlp"]
    factors = config["knob_factors"]["mlp"]
    assert list(mlp["methods"]) == config["methods"]
    assert mlp["members"] == len(config["methods"]) * len(factors) + len(
        config["baseline_peak_lrs"]["mlp"]
    )
    rows = results.read_jsonl(d / "metrics_mlp.jsonl")
    assert len(rows) == mlp["members"]
    for name, m in mlp["methods"].items():
        mine = [r for r in rows if r["method"] == name]
        np.testing.assert_allclose([r["knob_value"] for r in mine], m["knob_values"], rtol=1e-6)
        # The summary's grid is the final validation accuracy of those members (one seed).
        final = [r["val_accuracy"][-1] for r in mine]
        np.testing.assert_allclose(m["val_acc_grid"], final, rtol=1e-5)
        assert m["default_val_acc_mean"] == m["val_acc_grid"][factors.index(1.0)]
    tuned = mlp["tuned"]
    base = {r["knob_value"]: r["val_accuracy"][-1] for r in rows if r["method"].startswith("tuned")}
    assert tuned["val_acc_mean"] == pytest.approx(max(base.values()), rel=1e-5)
    # The baseline's family is the schedule comparison's best (it ran first: `reads`).
    part3 = results.read_json(study_run / "schedule_comparison" / "summary.json")
    assert tuned["from_comparison"] and tuned["family"] == part3["models"]["mlp"]["best_family"]


def test_lr_free_verdict_is_a_function_of_the_summary():
    from experiments import lr_free

    def summary(default, best):
        method = {"default_val_acc_mean": default, "best_val_acc_mean": best}
        return {
            "tolerance": 0.01,
            "models": {"cnn1d": {"tuned": {"val_acc_mean": 0.8}, "methods": {"m": method}}},
        }

    # Opposite summaries: the default within a point of the tuned best, and far below it.
    assert lr_free.verdicts(summary(0.795, 0.795)) == {"cnn1d": {"m": lr_free.NO_TUNING}}
    assert lr_free.verdicts(summary(0.70, 0.85)) == {"cnn1d": {"m": lr_free.KNOB_TUNED}}
    assert lr_free.verdicts(summary(0.70, 0.75)) == {"cnn1d": {"m": lr_free.BELOW}}
    # A diverged default (None in the summary) never counts as needing no tuning.
    assert lr_free.verdicts(summary(None, 0.81)) == {"cnn1d": {"m": lr_free.KNOB_TUNED}}
    assert lr_free.verdicts(summary(None, None)) == {"cnn1d": {"m": lr_free.BELOW}}


def test_snapshot_of_a_rerun_is_byte_identical_and_free_of_timings(quick_run, tmp_path):
    # `make experiment` twice on one commit and machine must leave docs/results unchanged
    out, _ = quick_run
    first = run.snapshot(out, tmp_path / "first")
    again = tmp_path / "again"
    assert run.main(["--config", "schedules", "--quick", "--out", str(again)]) == 0
    second = run.snapshot(again, tmp_path / "second")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert any(f.suffix == ".png" for f in files) and any(f.name == "summary.json" for f in files)
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f
    # the run's own report keeps its times; the snapshot drops them
    assert results.TIMING_LINE in (out / "schedules" / "report.md").read_text()
    for f in files:
        if f.suffix in (".md", ".json"):
            assert not re.search(r"\d s\b|seconds", (first / f).read_text()), f


def test_without_timings_drops_only_the_timing_line():
    text = "## Part\n\nbody 1.5 s\n\n" + results.timing_line(3.25, {"run": 2.0}) + "\n\nafter\n"
    assert results.timing_line(3.25, {"run": 2.0}) == "Run time: 3.2 s in all (run 2.0 s)."
    assert results.without_timings(text) == "## Part\n\nbody 1.5 s\n\nafter\n"


def test_halving_part_spends_fewer_member_steps_and_chooses_a_member_trained_to_the_end(study_run):
    summary = results.read_json(study_run / "halving" / "summary.json")
    config = configs.resolve("halving", quick=True)
    methods, k, t = summary["methods"], summary["members"], summary["num_steps"]
    assert methods["halving"]["member_steps"] < methods["hyperband"]["member_steps"]
    assert methods["hyperband"]["member_steps"] < methods["full"]["member_steps"] == k * t
    survivors = max(1, k // config["eta"] ** len(summary["rungs"]))
    for run_ in summary["runs"]["halving"]:
        stopped = np.asarray(run_["stopped_step"])
        assert stopped[run_["chosen"]] == -1
        assert (stopped == -1).sum() == survivors
        assert set(stopped[stopped >= 0].tolist()) <= set(summary["rungs"])
