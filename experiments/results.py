"""Writing a part's results: JSON, CSV, Markdown tables, timings and report stitching.

Wall-clock times vary from run to run, so they stay out of everything `make experiment`
commits: a part writes them with `write_timings` (not `summary.json`, not its report's prose),
the report shows them on one line starting with `TIMING_LINE`, and `without_timings` drops that
line from the committed copy. A re-run on the same commit and machine then leaves
`docs/results/` unchanged.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes `obj` as indented JSON."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file."""
    return json.loads(Path(path).read_text())


def compared_part(
    config: Mapping[str, Any], out_dir: str | os.PathLike, model: str
) -> tuple[dict | None, dict | None, str | None]:
    """``(summary, model_summary, reason)`` of the part ``config["compare_with"]`` in the same
    results folder as ``out_dir``: its summary and its entry for ``model``, or None and the
    reason a part falls back to its own default."""
    name = config["compare_with"]
    path = Path(out_dir).parent / name / "summary.json"
    if not path.exists():
        return None, None, f"no {name} results in this folder"
    summary = read_json(path)
    entry = summary.get("models", {}).get(model)
    if entry is None:
        return summary, None, f"{name} did not train {model}"
    return summary, entry, None


def write_csv(path: str | os.PathLike, columns: Mapping[str, np.ndarray]) -> None:
    """Writes equal-length 1-D columns as CSV; floats with 9 significant digits (float32-exact)."""
    names = list(columns)
    arrays = [np.asarray(columns[n]) for n in names]
    if len({a.shape for a in arrays}) > 1 or any(a.ndim != 1 for a in arrays):
        raise ValueError(f"columns must be 1-D of equal length, got {[a.shape for a in arrays]}")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in zip(*arrays, strict=True):
            writer.writerow([_fmt_csv(v) for v in row])


def read_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a CSV written by `write_csv` into float64 columns."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    return {name: body[:, i] for i, name in enumerate(header)}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats are shown with 4 significant digits."""
    cells = [[_fmt_md(c) for c in row] for row in rows]
    align = ["---:" if rows and _is_number(rows, i) else "---" for i in range(len(header))]
    lines = [header, align, *cells]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines) + "\n"


def rebase_links(markdown: str, prefix: str) -> str:
    """Prefixes relative link and image targets, so a part's report reads from its parent."""

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^([a-z]+:|/|#)", target):
            return m.group(0)
        return f"{m.group(1)}{prefix.rstrip('/')}/{target})"

    return re.sub(r"(!?\[[^\]]*\]\()([^)\s]+)\)", fix, markdown)


def noise(*stds: float, examples: int | None = None) -> float:
    """The noise level a difference of two results is judged against: the larger seed standard
    deviation of the two, and at least one example of the evaluation set (`1 / examples`)."""
    return max([float(s) for s in stds] + ([1.0 / examples] if examples else []))


def beyond(difference: float, level: float) -> str:
    """`'more than the noise'` when `|difference| > level`, else `'within the noise'`."""
    return "more than the noise" if abs(difference) > level else "within the noise"


TIMINGS = "timings.json"
TIMING_LINE = "Run time: "


def write_timings(out_dir: str | os.PathLike, timings: Mapping[str, float]) -> None:
    """Writes a part's wall-clock times in seconds, by what was timed, to `timings.json`."""
    write_json(Path(out_dir) / TIMINGS, {k: round(float(v), 1) for k, v in timings.items()})


def read_timings(out_dir: str | os.PathLike) -> dict[str, float]:
    """The timings a part wrote with `write_timings`; empty when it wrote none."""
    path = Path(out_dir) / TIMINGS
    return read_json(path) if path.exists() else {}


def timing_line(total: float, timings: Mapping[str, float]) -> str:
    """The one report line with a part's times, e.g. `Run time: 31.3 s in all (one run of 110
    members 30.0 s).`"""
    detail = "; ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    return f"{TIMING_LINE}{total:.1f} s in all" + (f" ({detail})." if detail else ".")


def without_timings(markdown: str) -> str:
    """`markdown` without its timing lines (and the blank line after each), for the snapshot."""
    lines, out, skip_blank = markdown.split("\n"), [], False
    for line in lines:
        if line.startswith(TIMING_LINE):
            skip_blank = True
            continue
        if not (skip_blank and line == ""):
            out.append(line)
        skip_blank = False
    return "\n".join(out)


def _fmt_csv(v: Any) -> str:
    if isinstance(v, np.floating):
        return f"{v:.9g}"
    return str(v)


def _fmt_md(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    return str(v)


def _is_number(rows: Sequence[Sequence[Any]], i: int) -> bool:
    return all(isinstance(r[i], int | float | np.number) for r in rows)


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Writes one JSON object per line; NumPy arrays become lists, non-finite floats `null`."""
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a file written by `write_jsonl`."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def member_rows(
    result: Any, labels: Sequence[Mapping[str, Any]], digits: int = 5
) -> list[dict[str, Any]]:
    """Per-member, per-step metrics of a `lrjax.sweep.SweepResult`, one row per member.

    Each row holds the member's `labels`, its training loss and learning rate at every step,
    the evaluation steps and each evaluation metric there, and whether/when it diverged. Floats
    keep `digits` significant digits.
    """
    rows = []
    for k, label in enumerate(labels):
        row = dict(label)
        row["loss"] = _round(result.loss[k], digits)
        row["learning_rate"] = _round(result.learning_rate[k], digits)
        row["eval_steps"] = np.asarray(result.eval_steps).tolist()
        for name, values in result.eval_metrics.items():
            row[f"val_{name}"] = _round(values[k], digits)
        row["diverged_step"] = int(result.diverged_step[k])
        rows.append(row)
    return rows


def _round(values: np.ndarray, digits: int) -> list[float | None]:
    return [float(f"{v:.{digits}g}") if np.isfinite(v) else None for v in np.asarray(values)]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.ndim else _jsonable(v.item())
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    return v
