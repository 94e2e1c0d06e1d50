"""Smoke test of `make experiment` (quick gallery into tmp_path) and unit tests of its pieces."""

import re

import numpy as np
import pytest

import lrjax
from experiments import configs, gallery, results, run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert run.main(["--config", "schedules", "--quick", "--out", str(out)]) == 0
    return out, configs.get_config("schedules", quick=True)


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
    assert not run.is_done(configs.get_config("schedules"), out / "schedules")


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("CONFIG", "schedules, schedules")
    monkeypatch.setenv("QUICK", "1")
    monkeypatch.setenv("FORCE", "0")
    args = run._parse([])
    assert (args.config, args.quick, args.force) == (None, True, False)
    assert run._parse(["--config", "a,b", "--config", "c"]).config == ["a", "b", "c"]


def test_unknown_config_is_rejected():
    with pytest.raises(ValueError, match=r"config must be one of schedules; got 'nope'"):
        configs.get_config("nope")


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
