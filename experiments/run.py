"""Runs the lrjax study: `python -m experiments.run [--config NAME ...] [--config.KEY=VALUE ...]
[--quick] [--force]`.

Each part (a config in `experiments/configs/`) writes `results/<part>/` (config.json, its data,
figures and report.md); `results/report.md` stitches every part's report with figures inline.
A part whose report.md exists and whose config.json equals the resolved config is skipped
unless --force. `--config.KEY=VALUE` overrides a field of the configs (see
`experiments/configs/__init__.py`). `make experiment` turns its variables into these flags:
CONFIG=a,b, QUICK=1, FORCE=1, OUT=DIR, DATASET=NAME, DATA_DIR=DIR, SNAPSHOT=DIR, and passes
ARGS as they are (e.g. `make experiment CONFIG=plateau ARGS='--config.num_steps=200'`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from experiments import configs, results

REPORT = "report.md"


def main(argv: list[str] | None = None) -> int:
    """Runs the parts that `argv` names; 2 (and the reason on stderr) for a bad config or
    override, before anything runs."""
    try:
        args, overrides = _parse(sys.argv[1:] if argv is None else argv)
        names = args.config or list(configs.PARTS)
        resolved = configs.resolve_all(
            names, quick=args.quick, dataset=args.dataset, data_dir=args.data_dir,
            overrides=overrides,
        )  # fmt: skip
    except ValueError as e:
        print(f"python -m experiments.run: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    todo = execution_order(resolved)
    total = time.perf_counter()
    ran: set[str] = set()
    for i, config in enumerate(todo, 1):
        part_dir = out / config["part"]
        prefix = f"[{i}/{len(todo)}] {config['part']}{' (quick)' if config['quick'] else ''}:"
        stale = ran.intersection(config.get("reads", ()))
        if not args.force and not stale and is_done(config, part_dir):
            print(f"{prefix} results exist in {part_dir}/, skipped (--force to re-run)")
            continue
        print(f"{prefix} running ...", flush=True)
        seconds = run_part(config, part_dir)
        ran.add(config["part"])
        print(f"{prefix} done in {seconds:.1f} s -> {part_dir / REPORT}", flush=True)
    report = stitch(out)
    print(f"report: {report} ({time.perf_counter() - total:.1f} s in all)")
    if args.snapshot and not args.quick and not overrides:
        print(f"snapshot of the results for the repository: {snapshot(out, Path(args.snapshot))}/")
    elif args.snapshot and not args.quick:
        print(f"no snapshot into {args.snapshot}/: the configs were overridden")
    return 0


# What the committed snapshot keeps of each part: the report, its figures and its summary.
SNAPSHOT_FILES = ("report.md", "*.png", "summary.json", "table*.md")


def snapshot(out: Path, target: Path) -> Path:
    """Copies the reports, figures and summaries of `out` into `target` (e.g. docs/results),
    the small part of a run that is committed so the README's numbers and images are in the
    repository; a part not in `out` keeps its earlier snapshot.

    The copied reports leave out their timing lines, and the parts keep wall-clock times out of
    their summaries and figures, so a re-run on the same commit and machine changes nothing here.
    """
    for part in [p for p in configs.PARTS if (out / p / REPORT).exists()]:
        dest = target / part
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for pattern in SNAPSHOT_FILES:
            for path in sorted((out / part).glob(pattern)):
                _copy(path, dest / path.name)
    if (out / REPORT).exists():
        target.mkdir(parents=True, exist_ok=True)
        _copy(out / REPORT, target / REPORT)
    return target


def _copy(source: Path, dest: Path) -> None:
    if source.suffix == ".md":
        dest.write_text(results.without_timings(source.read_text()))
    else:
        shutil.copyfile(source, dest)  # not copy2: a file's time stamp is no part of the result


def execution_order(todo: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`todo` reordered so that each part runs after the parts it `reads` (when also in `todo`).

    Otherwise the order is kept; the report keeps the order of `PARTS` either way.
    """
    pending, done, order = list(todo), set(), []
    names = {c["part"] for c in todo}
    while pending:
        for config in pending:
            if all(r in done or r not in names for r in config.get("reads", ())):
                break
        else:
            raise ValueError(f"parts read each other in a cycle: {[c['part'] for c in pending]}")
        pending.remove(config)
        done.add(config["part"])
        order.append(config)
    return order


def is_done(config: dict[str, Any], part_dir: Path) -> bool:
    """Whether `part_dir` holds a finished run of exactly this config."""
    done = (part_dir / REPORT).exists() and (part_dir / "config.json").exists()
    return done and results.read_json(part_dir / "config.json") == config


def run_part(config: dict[str, Any], part_dir: Path) -> float:
    """Runs one part into a clean `part_dir`; report.md is written last, marking it finished."""
    if part_dir.exists():
        shutil.rmtree(part_dir)
    part_dir.mkdir(parents=True)
    results.write_json(part_dir / "config.json", config)
    start = time.perf_counter()
    body = importlib.import_module(config["runner"]).run(config, part_dir)
    seconds = time.perf_counter() - start
    command = f"make experiment CONFIG={config['part']}{' QUICK=1' if config['quick'] else ''}"
    if config.get("overrides"):
        flags = " ".join(f"--config.{k}={v}" for k, v in config["overrides"].items())
        command += f" ARGS='{flags}'"
    lines = [
        f"## {config['title']}{' (quick)' if config['quick'] else ''}",
        "",
        f"`{command}` · {_machine()} · config in `experiments/configs/{config['part']}.py`",
        "",
        body.rstrip(),
        "",
        # the only line with times: the snapshot drops it (results.without_timings)
        results.timing_line(seconds, results.read_timings(part_dir)),
        "",
    ]
    (part_dir / REPORT).write_text("\n".join(lines))
    return seconds


def stitch(out: Path) -> Path:
    """Writes `out/report.md` from the finished parts' reports, in the order of `PARTS`."""
    parts = [p for p in configs.PARTS if (out / p / REPORT).exists()]
    sections = [results.rebase_links((out / p / REPORT).read_text(), p) for p in parts]
    contents = "\n".join(f"- [{p}]({p}/{REPORT})" for p in parts)
    text = "# lrjax experiment report\n\n" + contents + "\n\n" + "\n".join(sections)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(text)
    return out / REPORT


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
    """The run's flags, and the `--config.KEY=VALUE` (or `--config.KEY VALUE`) overrides."""
    rest, overrides = [], {}
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("--config."):
            key, eq, value = token.removeprefix("--config.").partition("=")
            if not eq:
                value = next(tokens, None)
                if value is None:
                    raise ValueError(f"--config.{key} needs a value: --config.{key}=VALUE")
            overrides[key] = value
        else:
            rest.append(token)
    p = argparse.ArgumentParser(
        prog="python -m experiments.run",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="--config.KEY=VALUE overrides a field of the configs, e.g. --config.num_steps=200",
    )
    p.add_argument(
        "--config",
        action="append",
        type=_split,
        help=f"parts to run (names, or paths of their config files), repeatable or "
        f"comma-separated; default: {', '.join(configs.PARTS)}",
    )
    p.add_argument("--out", default="results", help="results folder")
    p.add_argument("--force", action="store_true", help="re-run parts whose results exist")
    p.add_argument("--quick", action="store_true", help="smoke-test size")
    p.add_argument(
        "--snapshot",
        default="docs/results",
        help="copy reports, figures and summaries of a full run here ('' to skip)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="train on this dataset instead of MNIST-1D: mnist1d, digits, mnist, fashion_mnist",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder of the IDX files for --dataset mnist / fashion_mnist",
    )
    args = p.parse_args(rest)
    args.config = [n for group in args.config for n in group] if args.config else None
    return args, overrides


def _split(names: str) -> list[str]:
    return [n for n in names.replace(",", " ").split() if n]


def _machine() -> str:
    import jax

    backend = f"{jax.default_backend()} ({os.cpu_count()} cores)"
    return f"{platform.machine()} {backend}, jax {jax.__version__}"


if __name__ == "__main__":
    sys.exit(main())
