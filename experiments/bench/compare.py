"""Two benchmark runs side by side: ``python -m experiments.bench.compare BEFORE AFTER``.

``BEFORE`` and ``AFTER`` are the ``bench.json`` of two ``make bench`` runs (e.g. one with
``--lrjax-from`` an older checkout). Prints, per workload and K, lrjax's speed over the user's
loop (``vs seq. JAX``), its vectorization efficiency and the execution it ran, for both runs;
then the compile seconds (lrjax's program over the user's step, and with both inits; "-"
where a K reused the programs of a smaller one) and the guard's share of a step. Reads the
files only: it times nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.bench import report


def _lrjax_rows(payload: dict) -> dict:
    return {(r["workload"], r["k"]): r for r in payload["rows"] if r["engine"] == "lrjax"}


def _compile_ratios(checks: dict, k: str) -> tuple:
    """lrjax's program over the user's step, and program + init over step + init (compile
    seconds); None where this K reused an earlier K's programs."""
    program, step = checks["lrjax_compile_s"].get(k), checks["single_compile_s"]
    if program is None or program < report.REUSED_S or not step:
        return None, None
    init, user_init = checks["lrjax_init_compile_s"].get(k), checks["single_init_compile_s"]
    with_init = None if init is None else (program + init) / (step + user_init)
    return program / step, with_init


def compare(before: dict, after: dict) -> str:
    old, new = _lrjax_rows(before), _lrjax_rows(after)
    lines = [
        "| workload | K | before: vs seq. JAX | before: how | after: vs seq. JAX | "
        "after: how | after: vect. eff. | after: compile / step's | with init |",
        "|:---|---:|---:|:---|---:|:---|---:|---:|---:|",
    ]
    for key, row in new.items():
        workload, k = key
        was = old.get(key)
        program, with_init = _compile_ratios(after["checks"][workload], str(k))
        lines.append(
            f"| {workload} | {k} | {report.fmt(was and was['vs_sequential_jax'], '.2f', 'x')} | "
            f"{(was or {}).get('how') or '-'} | {row['vs_sequential_jax']:.2f}x | {row['how']} | "
            f"{report.fmt(row['efficiency'], '.2f')} | {report.fmt(program, '.2f', 'x')} | "
            f"{report.fmt(with_init, '.2f', 'x')} |"
        )
    lines += ["", "Guard's share of a step (lrjax with / without it, interleaved, median):"]
    for workload, checks in after["checks"].items():
        guard = checks.get("guard")
        was = before["checks"].get(workload, {}).get("guard")
        if guard:
            lines.append(
                f"- `{workload}` K = {guard['k']}: before "
                f"{report.fmt(was and 100 * was['cost'], '+.1f', '%')}, after "
                f"{100 * guard['cost']:+.1f}%"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    print(compare(json.loads(args.before.read_text()), json.loads(args.after.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
