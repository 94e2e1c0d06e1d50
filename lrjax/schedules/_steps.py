"""Step arithmetic shared by every schedule: the step as float32, exact integer positions
inside periods, clamping, and the checks of static arguments (durations, boundaries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._checks import (
    check_increasing,
    check_int,
    check_magnitude,
    is_int,
    is_traced,
)

Schedule = optax.Schedule


# --------------------------------------------------------------------------------------------
# Validation of static arguments and conversion of the step.
# --------------------------------------------------------------------------------------------

_INT32_MAX = 2**31 - 1


def _check_step(step: Any) -> None:
    """Rejects a concrete NaN or infinite step, which would silently give NaN learning rates.

    Only concrete values are inspected (a traced step cannot reach a Python ``if``); Python ints
    are exact and skip the check.
    """
    if isinstance(step, int) or is_traced(step):
        return
    array = np.asarray(step)
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
        raise ValueError(f"step must be finite, got {step!r}")


def _as_step(step: Any) -> jax.Array:
    """The step as float32, negative steps counting as 0.

    float32 first: a Python int beyond int32 would overflow on the way into JAX, and strict
    dtype promotion forbids mixing an int32 count with float32 magnitudes. float32 holds every
    integer only below 2**24: positions inside periods use :func:`_split_step` instead.
    """
    _check_step(step)
    return jnp.maximum(jnp.asarray(step, dtype=jnp.float32), 0.0)


def _host_int(step: Any) -> np.ndarray | None:
    """A NumPy integer step (scalar, array or list of ints) as a host array; None otherwise."""
    if isinstance(step, jax.Array | int):
        return None
    array = np.asarray(step)
    return array if array.dtype.kind in "iu" else None


def _split_step(step: Any, period: int, offset: int = 0) -> tuple[jax.Array, Any]:
    r"""``(k, x)`` with :math:`t = k P + x`, :math:`0 \le x < P`, for :math:`t = \max(s - b, 0)`.

    ``s`` is the step with negative steps counted as 0, ``P`` = ``period`` and ``b`` =
    ``offset``. Integer steps are divided in integer arithmetic before any float cast, so ``x``
    is exact at every step: Python and NumPy integers on the host (any size), JAX integer
    arrays in their own dtype (int32 by default, whose range every optax count stays in). A
    float32 cast of the step instead is exact only below 2**24, and beyond that the position in
    the period, and with it the learning rate, is wrong. Float steps keep float32 arithmetic.

    Returns:
      ``k`` as float32 (it only counts periods), and ``x`` as an integer array of the step's
      kind (host NumPy for host integers, JAX for JAX integers) or float32 for float steps.
    """
    if isinstance(step, int):  # Python ints stay exact at any size, also beyond int64
        k, x = divmod(max(max(step, 0) - offset, 0), period)
        return jnp.asarray(float(k), jnp.float32), np.int64(x)
    host = _host_int(step)
    if host is not None:
        t = np.maximum(host, 0)
        t = np.where(t > offset, t - offset, 0)
        k, x = np.divmod(t, period)
        return jnp.asarray(np.asarray(k, np.float64), jnp.float32), x.astype(np.int64)
    if isinstance(step, jax.Array) and jnp.issubdtype(step.dtype, jnp.integer):
        t = jnp.maximum(step, 0)
        t = jnp.where(t > offset, t - offset, 0)
        k = t // period
        return k.astype(jnp.float32), t - k * period
    t = jnp.maximum(_as_step(step) - offset, 0.0)
    k = jnp.floor(t / period)
    # Rounding of t / P can put x a hair outside [0, P); keep the phase inside the period.
    return k, jnp.clip(t - k * period, 0.0, period)


def _divmod_step(step: Any, period: int, offset: int = 0) -> tuple[jax.Array, jax.Array]:
    """:func:`_split_step` with the position ``x`` cast to float32 (exact, as ``x < period``)."""
    k, x = _split_step(step, period, offset)
    return k, jnp.asarray(x, jnp.float32)


def _clamp_step(step: Any, high: int) -> jax.Array:
    """The step clipped to ``[0, high]``: int32 for integer steps (exact), float32 otherwise.

    For schedules that are flat from ``high`` on, clamping first lets every integer step, even
    a Python int beyond int32, be compared with boundaries exactly in int32.
    """
    if isinstance(step, int):
        return jnp.asarray(min(max(step, 0), high), jnp.int32)
    host = _host_int(step)
    if host is not None:
        return jnp.asarray(np.clip(host, 0, high).astype(np.int32))
    if isinstance(step, jax.Array) and jnp.issubdtype(step.dtype, jnp.integer):
        return jnp.clip(step, 0, high)
    return jnp.clip(_as_step(step), 0.0, float(high))


def _f32(value: Any) -> jax.Array:
    return jnp.asarray(value, dtype=jnp.float32)


def _check_ordered(low_name: str, low: Any, high_name: str, high: Any, strict: bool) -> None:
    """Checks ``low <= high`` (``<`` if strict) when both magnitudes are concrete."""
    if low is None or high is None or is_traced(low) or is_traced(high):
        return
    if float(low) > float(high) or (strict and float(low) == float(high)):
        relation = "<" if strict else "<="
        raise ValueError(
            f"{low_name} must be {relation} {high_name}, got {low_name}={low!r}, "
            f"{high_name}={high!r}"
        )


def _check_boundaries(name: str, values: Sequence[Any], minimum: int) -> tuple[int, ...]:
    """Strictly increasing steps ``>= minimum`` that int32 steps (optax's count) can pass."""
    values = check_increasing(name, values, minimum)
    if values and values[-1] >= _INT32_MAX:
        raise ValueError(f"{name} must be < 2**31 - 1 (int32 steps), got {list(values)}")
    return values


def _check_values(**values: Any) -> None:
    """Checks learning-rate values (``>= 0``) that are concrete; traced ones pass."""
    for name, value in values.items():
        check_magnitude(name, value, 0)


def to_steps(duration: int | float, total_steps: int | None = None, name: str = "duration") -> int:
    """Converts a duration given in steps or as a fraction of ``total_steps`` to steps.

    An integer is a number of steps and is returned unchanged (it must be ``>= 0``). A float is a
    fraction of ``total_steps`` and must lie in ``[0, 1]``; it is rounded half up to the nearest
    step, so ``to_steps(0.05, 1000) == 50``.

    Args:
      duration: steps (int) or fraction of ``total_steps`` (float in ``[0, 1]``).
      total_steps: the total the fraction refers to; required for fractions.
      name: the argument name used in error messages.

    Returns:
      The duration in steps, a Python int.

    Examples:
      >>> from lrjax import to_steps
      >>> to_steps(0.1, 250), to_steps(30, 250)
      (25, 30)
    """
    if is_int(duration):
        return check_int(name, duration, 0)
    if isinstance(duration, float | np.floating):
        if not (math.isfinite(duration) and 0.0 <= duration <= 1.0):
            raise ValueError(
                f"{name} given as a float is a fraction of total_steps and must be in [0, 1], "
                f"got {duration!r}; give an integer for a number of steps"
            )
        if total_steps is None:
            raise ValueError(f"{name}={duration!r} is a fraction, so total_steps must be given")
        total_steps = check_int("total_steps", total_steps, 1)
        return math.floor(duration * total_steps + 0.5)
    raise ValueError(
        f"{name} must be an integer number of steps >= 0 or a float fraction in [0, 1], "
        f"got {duration!r}"
    )
