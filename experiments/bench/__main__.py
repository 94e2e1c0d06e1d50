"""``python -m experiments.bench``: see :mod:`experiments.bench`."""

import os
import sys

# XLA runs a CPU program on one core unless its ops are big enough to split; exposing each core as
# a device lets lrjax shard the member axis over all of them. This must happen before JAX starts,
# and only when the benchmark is the program: importing the package (tests do) changes nothing.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
    ).strip()
# --lrjax-from PATH: import lrjax from another checkout (the "before" figures); before any import.
if "--lrjax-from" in sys.argv:
    sys.path.insert(0, os.path.abspath(sys.argv[sys.argv.index("--lrjax-from") + 1]))

from experiments.bench.main import main

raise SystemExit(main())
