"""Schedule families as members of one program: :func:`schedule_family_switch`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks

# -----------------------------------------------------------------------------------------------
# Schedule families


def schedule_family_switch(index: Any, schedules: Sequence[optax.Schedule]) -> optax.Schedule:
    """Selects one of several schedules by an integer that may differ between members.

    ``schedule(step) = schedules[index](step)``, evaluated with ``jax.lax.switch``, so a
    comparison of cosine vs step vs one-cycle vs WSD runs as members of one program. Under
    ``vmap`` with per-member indices ``lax.switch`` evaluates every branch and selects, which is
    cheap for scalar schedules.

    Args:
      index: integer family index in ``[0, len(schedules))``; traced (vmappable). A concrete
        index out of range raises ``ValueError``; :func:`train` checks every member's index
        before compiling.
      schedules: the candidate ``optax.Schedule`` closures (typically built from the member's
        traced hyperparameters).

    Returns:
      An ``optax.Schedule``.

    Examples:
      >>> import optax
      >>> s = schedule_family_switch(1, [optax.constant_schedule(1.0),
      ...                                optax.linear_schedule(1.0, 0.0, 10)])
      >>> float(s(5))
      0.5
    """
    schedules = tuple(schedules)
    if not schedules:
        raise ValueError("schedules must hold at least one schedule, got none")
    if not _checks.is_traced(index):
        value = np.asarray(index)
        if value.shape != () or not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"index must be an integer scalar, got {value!r}")
        if not 0 <= int(value) < len(schedules):
            raise ValueError(
                f"schedule family index must be in [0, {len(schedules)}), got {int(value)}"
            )
    index = jnp.asarray(index).astype(jnp.int32)

    # Branches must agree on dtype: factories may return weakly typed or float64-free Python math.
    branches = [lambda step, f=f: jnp.asarray(f(step), jnp.float32) for f in schedules]

    def schedule(step):
        return jax.lax.switch(index, branches, jnp.asarray(step))

    return schedule
