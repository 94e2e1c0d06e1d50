"""The README's study section may only state numbers that the committed results hold.

Every decimal number in the section "The learning-rate study" must appear, as written, in a
report, table or summary under docs/results/ (what `make experiment` copies there), so the
README cannot drift from the results again.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The learning-rate study")
    return text[start : text.index("\n## ", start + 1)]


def results_text() -> str:
    parts = []
    for path in sorted((ROOT / "docs" / "results").rglob("*")):
        if path.suffix in (".md", ".txt"):
            parts.append(path.read_text())
        elif path.suffix == ".json":
            parts.append(json.dumps(json.loads(path.read_text())))
    return "\n".join(parts)


def test_every_decimal_in_the_study_section_is_in_the_committed_results():
    section = study_section()
    # the markdown table copied from the results is checked as a whole
    numbers = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", section))
    assert len(numbers) > 40  # the section does report its results
    found = results_text()
    missing = sorted(n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", found))
    assert not missing, f"README numbers not in docs/results: {missing}"


def test_images_of_the_study_section_are_committed():
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", study_section()):
        assert target.startswith("docs/results/"), target
        assert (ROOT / target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target


def test_every_benchmark_figure_in_the_readme_is_in_the_committed_runs():
    text = (ROOT / "README.md").read_text()
    start = text.index("### Benchmark")
    section = text[start : text.index("\n## ", start)]
    bench = ROOT / "docs" / "results" / "bench"
    # The committed runs: each run's report (bench.md), its raw results (bench.json, as
    # written by `make bench`) and the log of when the runs were made (runs.txt).
    found = "\n".join(
        json.dumps(json.loads(p.read_text())) if p.suffix == ".json" else p.read_text()
        for p in sorted(bench.rglob("*"))
        if p.suffix in (".md", ".json", ".txt")
    )
    numbers = set(re.findall(r"(?<![\w.])(?:\d+\.\d+|\d{4,})(?![\w.])", section))
    # constants of the workload, not measurements: the matmul size of the MFU reference, the
    # number of training sequences, SGD's momentum
    numbers -= {"1024", "4000", "0.9"}
    assert len(numbers) > 20
    missing = sorted(
        n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", found)
    )
    assert not missing, f"README benchmark figures not in docs/results/bench: {missing}"
