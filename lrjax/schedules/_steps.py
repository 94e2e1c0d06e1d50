"""Step arithmetic shared by every schedule: the step as float32, exact integer positions
inside periods and segments, and the checks of static arguments (step counts, boundaries,
flags, schedules).

A step arrives in one of four kinds, and each helper keeps integer kinds exact:

* a Python int: exact at any size (host arithmetic);
* a NumPy integer (scalar, array or list of ints): int64 on the host;
* a JAX integer array: its own dtype (int32 by default, int64 under ``jax_enable_x64``). A
  boundary or period beyond the dtype's range is never reached by such a step, so it is
  dropped rather than converted (which would overflow);
* anything else (floats): float32, which holds every integer only below 2**24. This is the
  documented float32 path: a float step or a step count beyond 2**24 is rounded to float32.

Static step counts (durations, boundaries, periods) are Python ints below 2**63.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._checks import check_increasing, check_int, check_magnitude, is_int, is_traced

Schedule = optax.Schedule

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------
# Checks of static arguments.
# --------------------------------------------------------------------------------------------


def _check_steps(name: str, value: Any, minimum: int = 0) -> int:
    """A static step count: an integer in ``[minimum, 2**63)`` (what an int64 step reaches)."""
    value = check_int(name, value, minimum)
    if value > _INT64_MAX:
        raise ValueError(f"{name} must be an integer < 2**63 (int64 steps), got {value}")
    return value


def _check_boundaries(name: str, values: Any, minimum: int) -> tuple[int, ...]:
    """Strictly increasing integer steps ``>= minimum`` and ``< 2**63``, given as a sequence."""
    if isinstance(values, np.ndarray | jax.Array) and not is_traced(values):
        values = np.asarray(values).tolist() if np.ndim(values) == 1 else values
    if not isinstance(values, list | tuple | range):
        raise ValueError(
            f"{name} must be a list of increasing integer steps (e.g. [30, 80]), got {values!r}"
        )
    values = check_increasing(name, values, minimum)
    if values and values[-1] > _INT64_MAX:
        raise ValueError(f"{name} must be < 2**63 (int64 steps), got {list(values)}")
    return values


def _check_flag(name: str, value: Any) -> bool:
    """A boolean option: ``True`` or ``False`` (a string such as ``'no'`` would read as true)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_schedule(name: str, schedule: Any) -> Callable[..., Any]:
    """A schedule: a callable ``step -> learning rate`` such as an ``optax.Schedule``."""
    if not callable(schedule):
        raise ValueError(
            f"{name} must be a schedule, a callable step -> learning rate (an optax.Schedule, "
            f"e.g. lrjax.constant(0.1)), got {schedule!r}"
        )
    return schedule


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


def _check_values(**values: Any) -> None:
    """Checks learning-rate values (``>= 0``) that are concrete; traced ones pass."""
    for name, value in values.items():
        check_magnitude(name, value, 0)


def to_steps(duration: int | float, total_steps: int | None = None, name: str = "duration") -> int:
    """Converts a duration given in steps or as a fraction of ``total_steps`` to steps.

    An integer is a number of steps and is returned unchanged (it must be ``>= 0`` and
    ``< 2**63``). A float is a fraction of ``total_steps`` and must lie in ``[0, 1]``; it is
    rounded half up to the nearest step, so ``to_steps(0.05, 1000) == 50``.

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
        return _check_steps(name, duration, 0)
    if isinstance(duration, float | np.floating):
        if not (math.isfinite(duration) and 0.0 <= duration <= 1.0):
            raise ValueError(
                f"{name} given as a float is a fraction of total_steps and must be in [0, 1], "
                f"got {duration!r}; give an integer for a number of steps"
            )
        if total_steps is None:
            raise ValueError(f"{name}={duration!r} is a fraction, so total_steps must be given")
        total_steps = _check_steps("total_steps", total_steps, 1)
        return math.floor(duration * total_steps + 0.5)
    raise ValueError(
        f"{name} must be an integer number of steps >= 0 or a float fraction in [0, 1], "
        f"got {duration!r}"
    )


# --------------------------------------------------------------------------------------------
# The step, exact where it is an integer.
# --------------------------------------------------------------------------------------------


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


def _f32(value: Any) -> jax.Array:
    return jnp.asarray(value, dtype=jnp.float32)


def _host_int(step: Any) -> np.ndarray | None:
    """A NumPy integer step (scalar, array or list of ints) as a host int64 array; else None."""
    if isinstance(step, jax.Array | int):
        return None
    array = np.asarray(step)
    return array.astype(np.int64) if array.dtype.kind in "iu" else None


def _device_int_max(step: Any) -> int | None:
    """The largest value of a JAX integer step's dtype; None for any other step."""
    if isinstance(step, jax.Array) and jnp.issubdtype(step.dtype, jnp.integer):
        return int(jnp.iinfo(step.dtype).max)
    return None


def _offset_step(step: Any, offset: int) -> Any:
    """``max(s - b, 0)`` for ``s`` the step with negatives as 0, of the step's own kind.

    Exact for integer steps (a Python int, a host int64 array or a JAX integer array in its own
    dtype); float32 otherwise. A JAX integer step never reaches an offset beyond its dtype.
    """
    if isinstance(step, int):
        return max(max(step, 0) - offset, 0)
    host = _host_int(step)
    if host is not None:
        t = np.maximum(host, 0)
        return np.where(t > offset, t - offset, 0)
    high = _device_int_max(step)
    if high is not None:
        if offset > high:
            return jnp.zeros_like(step)
        t = jnp.maximum(step, 0)
        return jnp.where(t > offset, t - offset, 0)
    return jnp.maximum(_as_step(step) - float(offset), 0.0)


def _split_step(step: Any, period: int, offset: int = 0) -> tuple[jax.Array, Any]:
    r"""``(k, x)`` with :math:`t = k P + x`, :math:`0 \le x < P`, for :math:`t = \max(s - b, 0)`.

    ``s`` is the step with negative steps counted as 0, ``P`` = ``period`` and ``b`` =
    ``offset``. Integer steps are divided in integer arithmetic before any float cast, so ``x``
    is exact at every step: Python and NumPy integers on the host (any size), JAX integer
    arrays in their own dtype (a period beyond the dtype is never completed). A float32 cast of
    the step instead is exact only below 2**24, and beyond that the position in the period, and
    with it the learning rate, is wrong. Float steps keep float32 arithmetic.

    Returns:
      ``k`` as float32 (it only counts periods), and ``x`` as an integer of the step's kind
      (host NumPy for host integers, JAX for JAX integers) or float32 for float steps.
    """
    t = _offset_step(step, offset)
    if isinstance(step, int):
        k, x = divmod(t, period)
        return jnp.asarray(float(k), jnp.float32), np.int64(x)
    if isinstance(t, np.ndarray):
        k, x = np.divmod(t, period)
        return jnp.asarray(np.asarray(k, np.float64), jnp.float32), x
    high = _device_int_max(step)
    if high is not None:
        if period > high:  # the first period never ends within the dtype
            return jnp.zeros(jnp.shape(t), jnp.float32), t
        k = t // period
        return k.astype(jnp.float32), t - k * period
    k = jnp.floor(t / float(period))
    # Rounding of t / P can put x a hair outside [0, P); keep the phase inside the period.
    return k, jnp.clip(t - k * float(period), 0.0, float(period))


def _divmod_step(step: Any, period: int, offset: int = 0) -> tuple[jax.Array, jax.Array]:
    """:func:`_split_step` with ``x`` cast to float32 (exact while ``x < 2**24``)."""
    k, x = _split_step(step, period, offset)
    return k, jnp.asarray(x, jnp.float32)


def _locate(step: Any, starts: Sequence[int]) -> tuple[jax.Array, Any]:
    r"""``(i, x)``: the segment :math:`i` with :math:`b_i \le t < b_{i+1}` and :math:`x = t - b_i`.

    ``starts`` are the static segment starts :math:`b_0 = 0 < b_1 < \dots` (Python ints) and
    :math:`t` the step with negatives as 0. For integer steps the comparison and the
    subtraction are exact (as in :func:`_split_step`); float steps compare in float32.

    Returns:
      ``i`` as an int32 array (to index tables of the segments) and ``x`` of the step's kind.
    """
    if isinstance(step, int):
        t = max(step, 0)
        i = bisect.bisect_right(starts, t) - 1
        return jnp.asarray(i, jnp.int32), t - starts[i]
    host = _host_int(step)
    if host is not None:
        t = np.maximum(host, 0)
        bounds = np.asarray([b for b in starts if b <= _INT64_MAX], np.int64)
        i = np.searchsorted(bounds, t, side="right") - 1
        return jnp.asarray(i, jnp.int32), t - bounds[i]
    high = _device_int_max(step)
    if high is not None:
        t = jnp.maximum(step, 0)
        bounds = jnp.asarray([b for b in starts if b <= high], step.dtype)
    else:
        t = _as_step(step)
        bounds = jnp.asarray(starts, jnp.float32)
    method = "compare_all" if bounds.shape[0] <= 64 else "scan"
    i = jnp.searchsorted(bounds, t, side="right", method=method) - 1
    return i.astype(jnp.int32), t - bounds[i]


def _clamp_step(step: Any, high: int) -> Any:
    """The step clipped to ``[0, high]``, of its own kind (exact for integer steps)."""
    if isinstance(step, int):
        return min(max(step, 0), high)
    host = _host_int(step)
    if host is not None:
        return np.clip(host, 0, high)
    dtype_max = _device_int_max(step)
    if dtype_max is not None:
        return jnp.clip(step, 0, min(high, dtype_max))
    return jnp.clip(_as_step(step), 0.0, float(high))


def _since(step: Any, offset: int) -> jax.Array:
    """``max(t - b, 0)`` as float32, the subtraction exact for integer steps."""
    return _f32(_offset_step(step, offset))


def _until(step: Any, end: int) -> jax.Array:
    """``max(e - t, 0)`` as float32, the subtraction exact for integer steps.

    The steps left before ``end``: near the end of a long decay it is a small integer that a
    float32 cast of ``t`` (exact only below 2**24) would lose.
    """
    if isinstance(step, int):
        return _f32(max(end - max(step, 0), 0))
    host = _host_int(step)
    if host is not None:
        return _f32(np.maximum(end - np.maximum(host, 0), 0))
    high = _device_int_max(step)
    if high is not None:
        t = jnp.maximum(step, 0)
        if end > high:  # never reached within the dtype
            return float(end) - _f32(t)
        return _f32(jnp.maximum(end - t, 0))
    return jnp.maximum(float(end) - _as_step(step), 0.0)
