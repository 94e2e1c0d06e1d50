"""Validation of static and concrete arguments, shared by every module of lrjax.

Every check names the argument and the allowed range in its ``ValueError``. Numbers are
checked for finiteness first (``nan < 1`` is False, so a bare range test lets NaN through), and
booleans are never accepted as numbers. A traced value (a ``jax.core.Tracer``) skips the
magnitude checks: it is only known inside ``jit``/``vmap``, where a Python ``if`` cannot look
at it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def _interval(minimum, maximum, open_min, open_max) -> str:
    """`` in [a, b]``, `` >= a``, ... with a leading space; empty when there is no bound."""
    if minimum is not None and maximum is not None:
        return f" in {'(' if open_min else '['}{minimum}, {maximum}{')' if open_max else ']'}"
    if minimum is not None:
        return f" {'>' if open_min else '>='} {minimum}"
    if maximum is not None:
        return f" {'<' if open_max else '<='} {maximum}"
    return ""


def _outside(value, minimum, maximum, open_min, open_max) -> bool:
    low = minimum is not None and (value <= minimum if open_min else value < minimum)
    high = maximum is not None and (value >= maximum if open_max else value > maximum)
    return bool(low or high)


def is_int(value: Any) -> bool:
    """A Python or NumPy integer that is not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int, after checking it is an integer in ``[minimum, maximum]``."""
    if not is_int(value) or _outside(value, minimum, maximum, False, False):
        bound = _interval(minimum, maximum, False, False)
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` after checking it is a bool (a string such as ``"no"`` is refused: it would be
    read as true)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_float(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    """``value`` as a float, after checking it is a finite real number in the given interval."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )
    if not ok or not math.isfinite(value) or _outside(value, minimum, maximum, open_min, open_max):
        bound = _interval(minimum, maximum, open_min, open_max)
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_increasing(
    name: str, values: Sequence[Any], minimum: int | None = None, maximum: int | None = None
) -> tuple[int, ...]:
    """A strictly increasing tuple of integers in ``[minimum, maximum]``."""
    values = tuple(check_int(f"{name}[{i}]", v, minimum, maximum) for i, v in enumerate(values))
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
    return values


def is_traced(value: Any) -> bool:
    """Whether ``value`` is (or holds) a tracer, so it cannot be inspected in Python."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(value))


def check_magnitude(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> None:
    """Checks a concrete scalar magnitude of a schedule or controller; tracers pass unchecked.

    A concrete value must be a real scalar (a vector outside ``vmap`` would silently turn the
    schedule into a vector of learning rates), finite, and inside the interval.
    """
    if is_traced(value):
        return
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)
    ):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if array.shape != ():
        raise ValueError(
            f"{name} must be a scalar, got shape {array.shape}; to give each member its own "
            "value, build the schedule inside jax.vmap (or lrjax.sweep) over that value"
        )
    number = float(array)
    if not math.isfinite(number) or _outside(number, minimum, maximum, open_min, open_max):
        bound = _interval(minimum, maximum, open_min, open_max)
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")


# Optimizer arguments whose domain is the same in every optax optimizer that takes them:
# name -> (minimum, maximum, open_max). Outside it an optimizer trains silently wrong (a negative
# learning rate ascends the loss, b1 >= 1 never forgets a gradient, a negative weight decay
# grows the weights), so every member's values are checked before anything compiles.
OPTIMIZER_DOMAINS: dict[str, tuple[int, int | None, bool]] = {
    "learning_rate": (0, None, False),
    "b1": (0, 1, True),
    "b2": (0, 1, True),
    "b3": (0, 1, True),
    "momentum": (0, 1, True),
    "decay": (0, 1, True),
    "rho": (0, 1, True),
    "eps": (0, None, False),
    "eps_root": (0, None, False),
    "weight_decay": (0, None, False),
}


def check_optimizer_argument(name: str, kwarg: str, value: Any) -> None:
    """Checks a concrete optimizer argument ``kwarg`` against :data:`OPTIMIZER_DOMAINS`
    (a real scalar inside its domain); ``name`` says whose argument it is in the message.
    Arguments without a known domain, None (e.g. ``momentum=None``) and tracers pass."""
    if kwarg not in OPTIMIZER_DOMAINS or value is None or is_traced(value):
        return
    minimum, maximum, open_max = OPTIMIZER_DOMAINS[kwarg]
    if np.shape(value) != ():
        raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
    check_magnitude(name, _plain_number(value), minimum, maximum, open_max=open_max)


def in_optimizer_domain(kwarg: str, values: Any) -> np.ndarray:
    """Elementwise: which of ``values`` are real, finite and inside ``kwarg``'s domain."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        return np.zeros(values.shape, bool)
    minimum, maximum, open_max = OPTIMIZER_DOMAINS[kwarg]
    ok = np.isfinite(values) & (values >= minimum)
    if maximum is not None:
        ok &= values < maximum if open_max else values <= maximum
    return ok


def _plain_number(value: Any) -> Any:
    """A concrete real scalar as a Python number, so a message reads ``got -0.2``, not an
    array's repr (nor float32's -0.20000000298023224)."""
    array = np.asarray(value)
    if array.shape == () and np.issubdtype(array.dtype, np.floating):
        return float(str(array[()]))  # the shortest repr that round-trips in its own dtype
    if array.shape == () and np.issubdtype(array.dtype, np.integer):
        return int(array)
    return value
