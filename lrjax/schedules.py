"""Learning-rate schedules as pure, jit- and vmap-compatible functions of the step.

Every factory here validates its static arguments (step counts, boundaries, numbers of
cycles, mode names) when the schedule is built, and returns a closure ``schedule(step) -> lr``
typed as :data:`optax.Schedule`, so it drops into ``optax.sgd``, ``optax.adamw``,
``optax.inject_hyperparams`` and ``optax.join_schedules`` unchanged.

Conventions shared by all schedules:

* ``step`` is optax's update count: ``schedule(t)`` is the learning rate used by the update
  at optimizer count ``t`` (``t = 0`` for the first update). In PyTorch terms it is the LR
  after ``t`` calls of ``scheduler.step()``. Python ints (also beyond int32), integer arrays
  and float arrays are accepted, and negative steps count as 0. A concrete step that is NaN or
  infinite raises ``ValueError`` (a traced one cannot be inspected).
* Integer steps stay exact at every step: positions inside periods and staircases (cyclic,
  SGDR, snapshot ensembles, :func:`repeat`, Keras' cyclic polynomial, hard restarts, step and
  staircase decays, milestones) are computed in integer arithmetic before any float cast:
  Python and NumPy integers on the host at any size, JAX integer arrays in their own dtype
  (int32 under the default JAX config, the dtype of optax's count). The rest of the formula
  then runs in float32, which holds every integer only below 2**24. Float steps are used as
  float32.
* Magnitudes (initial, peak, final and floor values, decay rates, ``gamma``, factors, powers)
  are traced: they never reach a Python ``if``, so ``jax.vmap`` over any of them works. A
  concrete magnitude (a Python, NumPy or concrete JAX number) is validated when the schedule
  is built: it must be a finite real scalar in the range its formula needs (learning rates
  ``>= 0``, decay factors ``> 0``, ...; each factory's Args give the range). Only a traced
  value skips the check. A vector of magnitudes outside ``vmap`` is an error: build the
  schedule inside ``jax.vmap`` (or :mod:`lrjax.sweep`) over the value instead.
* Durations are integers (steps). Factories that take ``total_steps`` also accept their other
  durations as fractions of it (floats in ``[0, 1]``), converted by :func:`to_steps`.
* The result is float32.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._checks import (
    check_choice,
    check_float,
    check_increasing,
    check_int,
    check_magnitude,
    is_int,
    is_traced,
)

Schedule = optax.Schedule

__all__ = [
    "SCHEDULES",
    "clip",
    "constant",
    "cosine_decay",
    "cosine_with_hard_restarts",
    "cyclic",
    "exponential_decay",
    "get",
    "inverse_sqrt",
    "inverse_time_decay",
    "invscaling",
    "join",
    "linear",
    "multistep_decay",
    "names_table",
    "one_cycle",
    "one_cycle_momentum",
    "optimal",
    "piecewise_constant",
    "polynomial_decay",
    "repeat",
    "scale",
    "sgdr",
    "snapshot_ensemble",
    "snapshot_steps",
    "step_decay",
    "swa_schedule",
    "tanh_decay",
    "to_steps",
    "warmup",
    "warmup_cosine_decay",
    "warmup_linear_decay",
    "warmup_stable_decay",
]


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


# --------------------------------------------------------------------------------------------
# 1-2. Constant and linear.
# --------------------------------------------------------------------------------------------


def constant(value: float) -> Schedule:
    r"""A constant learning rate.

    .. math:: \eta_t = \eta

    Args:
      value: the learning rate :math:`\eta \ge 0` (traceable; checked unless traced).

    Returns:
      A schedule ``step -> value`` (float32, shaped like ``step``).

    Examples:
      >>> import lrjax
      >>> float(lrjax.constant(0.1)(1000))
      0.1

    References:
      The default of every optimizer; optax ``constant_schedule``, PyTorch ``ConstantLR`` with
      ``factor=1``.
    """
    check_magnitude("value", value, 0)

    def schedule(step):
        return jnp.zeros_like(_as_step(step)) + _f32(value)

    return schedule


def linear(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    r"""Linear interpolation from ``init_value`` to ``end_value``.

    .. math::
        \eta_t = \eta_0 + (\eta_1 - \eta_0)\,
                 \mathrm{clip}\!\left(\frac{t - b}{n}, 0, 1\right)

    with :math:`\eta_0` = ``init_value``, :math:`\eta_1` = ``end_value``, :math:`n` =
    ``transition_steps`` and :math:`b` = ``transition_begin``.

    Matches optax ``linear_schedule``. PyTorch ``LinearLR(start_factor, end_factor,
    total_iters)`` on a base LR :math:`\eta` is ``linear(eta * start_factor, eta * end_factor,
    total_iters)``.

    Args:
      init_value: value up to ``transition_begin``, ``>= 0`` (traceable; checked unless
        traced).
      end_value: value from ``transition_begin + transition_steps`` on, ``>= 0`` (traceable;
        checked unless traced).
      transition_steps: length of the ramp, ``>= 1``.
      transition_begin: step at which the ramp starts, ``>= 0``.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.linear(1.0, 0.0, transition_steps=100)
      >>> [round(float(schedule(t)), 6) for t in (0, 25, 100, 200)]
      [1.0, 0.75, 0.0, 0.0]

    References:
      optax ``linear_schedule``; PyTorch ``torch.optim.lr_scheduler.LinearLR``.
    """
    transition_steps = check_int("transition_steps", transition_steps, 1)
    transition_begin = check_int("transition_begin", transition_begin, 0)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)

    def schedule(step):
        done = jnp.clip(_as_step(step) - transition_begin, 0.0, transition_steps)
        start, end = _f32(init_value), _f32(end_value)
        # Interpolate from the nearer end, so values near either end (such as a decay's last,
        # tiny LRs) keep full relative precision instead of cancelling in 1 - t/n.
        from_start = start + (end - start) * (done / transition_steps)
        from_end = end + (start - end) * ((transition_steps - done) / transition_steps)
        return jnp.where(2 * done < transition_steps, from_start, from_end)

    return schedule


# --------------------------------------------------------------------------------------------
# 3. Step decay, multi-step decay, piecewise constant.
# --------------------------------------------------------------------------------------------


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    r"""Decays the learning rate by ``gamma`` every ``step_size`` steps.

    .. math:: \eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      step_size: :math:`s`, the period of decay, ``>= 1``.
      gamma: :math:`\gamma > 0`, the multiplicative factor (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.step_decay(1.0, step_size=30, gamma=0.1)
      >>> [round(float(schedule(t)), 6) for t in (0, 29, 30, 60)]
      [1.0, 1.0, 0.1, 0.01]

    References:
      Matches PyTorch ``StepLR`` (closed form); Krizhevsky et al., ImageNet Classification with
      Deep Convolutional Neural Networks, NeurIPS 2012.
    """
    step_size = check_int("step_size", step_size, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("gamma", gamma, 0, open_min=True)

    def schedule(step):
        decays, _ = _divmod_step(step, step_size)
        return _f32(init_value) * _f32(gamma) ** decays

    return schedule


def multistep_decay(init_value: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    r"""Decays the learning rate by ``gamma`` at each milestone.

    .. math:: \eta_t = \eta_0\,\gamma^{\#\{i \,:\, m_i \le t\}}

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      milestones: strictly increasing steps :math:`1 \le m_i < 2^{31} - 1`.
      gamma: :math:`\gamma > 0` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.multistep_decay(1.0, milestones=[30, 80], gamma=0.5)
      >>> [round(float(schedule(t)), 6) for t in (29, 30, 79, 80)]
      [1.0, 0.5, 0.5, 0.25]

    References:
      Matches PyTorch ``MultiStepLR`` (closed form, ``bisect_right``); He et al., Deep Residual
      Learning for Image Recognition, CVPR 2016.
    """
    milestones = _check_boundaries("milestones", milestones, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("gamma", gamma, 0, open_min=True)

    def schedule(step):
        # Flat from the last milestone on, so clamping there keeps integer steps exact.
        t = _clamp_step(step, milestones[-1] if milestones else 0)
        bounds = jnp.asarray(milestones, t.dtype).reshape((1,) * t.ndim + (-1,))
        passed = jnp.sum(t[..., None] >= bounds, axis=-1)
        return _f32(init_value) * _f32(gamma) ** passed.astype(jnp.float32)

    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float] | jax.Array) -> Schedule:
    r"""Piecewise-constant learning rate given by absolute values between boundaries.

    .. math::
        \eta_t = v_i \quad\text{with}\quad i = \#\{j \,:\, t > b_j\}

    so ``values[0]`` is used for ``t <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < t <= boundaries[i]`` and ``values[-1]`` after the last boundary.

    Args:
      boundaries: strictly increasing steps :math:`0 \le b_j < 2^{31} - 1`.
      values: ``len(boundaries) + 1`` values :math:`v_i \ge 0` (traceable, as one array; each
        checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.piecewise_constant([100, 200], [1.0, 0.5, 0.1])
      >>> [round(float(schedule(t)), 6) for t in (100, 101, 200, 201)]
      [1.0, 0.5, 0.5, 0.1]

    References:
      Matches Keras ``PiecewiseConstantDecay`` (including its ``step <= boundary`` convention;
      optax ``piecewise_constant_schedule`` instead multiplies scales at ``step >= boundary``).
    """
    boundaries = _check_boundaries("boundaries", boundaries, 0)
    if not is_traced(values):
        for i, value in enumerate(np.asarray(values, dtype=object).reshape(-1)):
            check_magnitude(f"values[{i}]", value, 0)
    values = jnp.asarray(values, dtype=jnp.float32)
    if values.shape != (len(boundaries) + 1,):
        raise ValueError(
            f"values must have len(boundaries) + 1 = {len(boundaries) + 1} entries, "
            f"got shape {values.shape}"
        )

    def schedule(step):
        # Flat after the last boundary, so clamping just past it keeps integer steps exact.
        t = _clamp_step(step, boundaries[-1] + 1 if boundaries else 0)
        bounds = jnp.asarray(boundaries, t.dtype).reshape((1,) * t.ndim + (-1,))
        return values[jnp.sum(t[..., None] > bounds, axis=-1)]

    return schedule


# --------------------------------------------------------------------------------------------
# 4-5. Exponential, inverse-time and scikit-learn's decays.
# --------------------------------------------------------------------------------------------


def exponential_decay(
    init_value: float,
    decay_rate: float,
    decay_steps: int,
    staircase: bool = False,
    end_value: float | None = None,
    transition_begin: int = 0,
) -> Schedule:
    r"""Exponential decay, continuous or staircase, with an optional bound.

    .. math::
        \eta_t = \eta_0\, r^{p}, \qquad
        p = \frac{\max(t - b, 0)}{s}\ \ (\lfloor\cdot\rfloor \text{ if staircase})

    with :math:`r` = ``decay_rate``, :math:`s` = ``decay_steps``, :math:`b` =
    ``transition_begin``. If ``end_value`` is given it bounds the result: a floor when
    :math:`r < 1`, a ceiling when :math:`r > 1` (chosen with ``jnp.where``, so ``decay_rate``
    stays traceable).

    Matches Keras ``ExponentialDecay``; PyTorch ``ExponentialLR(gamma)`` is
    ``exponential_decay(lr, gamma, decay_steps=1)``.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      decay_rate: :math:`r > 0` (traceable; checked unless traced).
      decay_steps: :math:`s`, ``>= 1``.
      staircase: decay in discrete jumps every ``decay_steps``.
      end_value: optional floor (or ceiling when growing), ``>= 0`` (traceable; checked unless
        traced).
      transition_begin: steps to hold ``init_value`` before decaying, ``>= 0``.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.exponential_decay(1.0, decay_rate=0.5, decay_steps=10)
      >>> [round(float(schedule(t)), 6) for t in (0, 10, 15, 20)]
      [1.0, 0.5, 0.353553, 0.25]
      >>> floored = lrjax.exponential_decay(1.0, 0.5, 10, staircase=True, end_value=0.3)
      >>> [round(float(floored(t)), 6) for t in (15, 20)]
      [0.5, 0.3]

    References:
      Keras ``keras.optimizers.schedules.ExponentialDecay``; optax ``exponential_decay``.
    """
    decay_steps = check_int("decay_steps", decay_steps, 1)
    transition_begin = check_int("transition_begin", transition_begin, 0)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("decay_rate", decay_rate, 0, open_min=True)
    if end_value is not None:
        check_magnitude("end_value", end_value, 0)

    def schedule(step):
        if staircase:
            p, _ = _divmod_step(step, decay_steps, offset=transition_begin)
        else:
            p = jnp.maximum(_as_step(step) - transition_begin, 0.0) / decay_steps
        lr = _f32(init_value) * _f32(decay_rate) ** p
        if end_value is None:
            return lr
        end = _f32(end_value)
        return jnp.where(_f32(decay_rate) < 1, jnp.maximum(lr, end), jnp.minimum(lr, end))

    return schedule


def inverse_time_decay(
    init_value: float, decay_rate: float, decay_steps: int, staircase: bool = False
) -> Schedule:
    r"""Time-based (inverse-time) decay.

    .. math::
        \eta_t = \frac{\eta_0}{1 + k\,p}, \qquad
        p = \frac{t}{s}\ \ (\lfloor\cdot\rfloor \text{ if staircase})

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      decay_rate: :math:`k \ge 0` (traceable; checked unless traced).
      decay_steps: :math:`s`, ``>= 1``.
      staircase: decay in discrete jumps every ``decay_steps``.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.inverse_time_decay(1.0, decay_rate=0.5, decay_steps=10)
      >>> [round(float(schedule(t)), 6) for t in (0, 10, 20)]
      [1.0, 0.666667, 0.5]

    References:
      Matches Keras ``InverseTimeDecay`` (the ``decay`` argument of Keras' legacy optimizers
      is the case ``decay_steps=1``).
    """
    decay_steps = check_int("decay_steps", decay_steps, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("decay_rate", decay_rate, 0)

    def schedule(step):
        p = _divmod_step(step, decay_steps)[0] if staircase else _as_step(step) / decay_steps
        return _f32(init_value) / (1.0 + _f32(decay_rate) * p)

    return schedule


def invscaling(init_value: float, power_t: float = 0.25) -> Schedule:
    r"""scikit-learn's ``invscaling`` schedule.

    .. math:: \eta_t = \frac{\eta_0}{(t + 1)^{\,p}}

    scikit-learn counts updates from 1 (its ``t_`` starts at 1.0), so its
    :math:`\eta_0 / t_{sk}^{p}` at :math:`t_{sk} = t + 1` is this schedule at optax step
    :math:`t`.

    Args:
      init_value: :math:`\eta_0 \ge 0`, scikit-learn's ``eta0`` (traceable; checked unless
        traced).
      power_t: :math:`p`, scikit-learn's ``power_t``, finite (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.invscaling(1.0, power_t=0.5)
      >>> [round(float(schedule(t)), 6) for t in (0, 3, 99)]
      [1.0, 0.5, 0.1]

    References:
      Matches scikit-learn ``SGDClassifier(learning_rate="invscaling")``.
    """
    check_magnitude("init_value", init_value, 0)
    check_magnitude("power_t", power_t)

    def schedule(step):
        return _f32(init_value) / (_as_step(step) + 1.0) ** _f32(power_t)

    return schedule


def optimal(alpha: float, t0: float | None = None) -> Schedule:
    r"""scikit-learn's ``optimal`` schedule, from Léon Bottou's SGD heuristics.

    .. math:: \eta_t = \frac{1}{\alpha\,(t_0 + t)}

    scikit-learn writes :math:`1 / (\alpha (t_0 + t_{sk} - 1))` with its 1-based
    :math:`t_{sk} = t + 1`. When ``t0`` is ``None`` it is scikit-learn's heuristic, chosen so
    that the first update uses a typical step size :math:`\eta_{init}`:

    .. math::
        w_{typ} = \alpha^{-1/4}, \quad
        \eta_{init} = \frac{w_{typ}}{\max(1, \ell'(-w_{typ}, 1))} = w_{typ}, \quad
        t_0 = \frac{1}{\eta_{init}\,\alpha}

    (the loss derivative :math:`\ell'(-w_{typ}, 1)` is negative for every scikit-learn SGD
    loss, so the maximum is 1).

    Args:
      alpha: :math:`\alpha > 0`, the L2 regularisation strength (traceable; checked unless
        traced).
      t0: :math:`t_0 > 0` (traceable; checked unless traced), or ``None`` for scikit-learn's
        heuristic.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.optimal(alpha=1e-4)  # w_typ = eta_init = 10, t0 = 1000
      >>> [round(float(schedule(t)), 6) for t in (0, 1000)]
      [10.0, 5.0]

    References:
      Matches scikit-learn ``SGDClassifier(learning_rate="optimal")``; Bottou, Stochastic
      Gradient Descent Tricks, Neural Networks: Tricks of the Trade, 2012.
    """
    check_magnitude("alpha", alpha, 0, open_min=True)
    if t0 is not None:
        check_magnitude("t0", t0, 0, open_min=True)

    def schedule(step):
        a = _f32(alpha)
        if t0 is None:
            start = 1.0 / (a**-0.25 * a)
        else:
            start = _f32(t0)
        return 1.0 / (a * (start + _as_step(step)))

    return schedule


# --------------------------------------------------------------------------------------------
# 6-7. Polynomial and cosine decay.
# --------------------------------------------------------------------------------------------


def polynomial_decay(
    init_value: float,
    end_value: float,
    decay_steps: int,
    power: float = 1.0,
    cycle: bool = False,
) -> Schedule:
    r"""Polynomial decay from ``init_value`` to ``end_value``.

    .. math::
        \eta_t = (\eta_0 - \eta_1)\left(1 - \frac{\min(t, s)}{s}\right)^{p} + \eta_1

    With ``cycle=True`` (Keras semantics) :math:`s` grows to
    :math:`s \lceil t / s \rceil` (one period at :math:`t = 0`) and :math:`t` is not clipped,
    so the LR jumps back up after each multiple of :math:`s`.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      end_value: :math:`\eta_1 \ge 0` (traceable; checked unless traced).
      decay_steps: :math:`s`, ``>= 1``.
      power: :math:`p > 0` (traceable; checked unless traced).
      cycle: Keras' cyclic variant.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.polynomial_decay(1.0, 0.0, decay_steps=100, power=2.0)
      >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 150)]
      [1.0, 0.25, 0.0, 0.0]

    References:
      Matches Keras ``PolynomialDecay`` and, with ``end_value=0``, PyTorch ``PolynomialLR``.
    """
    decay_steps = check_int("decay_steps", decay_steps, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)
    check_magnitude("power", power, 0, open_min=True)

    def schedule(step):
        if cycle:
            # t = k s + x; the span is s ceil(t / s) (s at t = 0), and span - t is the exact
            # integer s - x (0 at the end of a period), so no digits cancel at giant steps.
            k, x = _divmod_step(step, decay_steps)
            periods = jnp.where(x > 0, k + 1.0, jnp.maximum(k, 1.0))
            left = jnp.where(x > 0, decay_steps - x, jnp.where(k == 0, float(decay_steps), 0.0))
            remaining = left / (periods * decay_steps)
        else:
            remaining = (decay_steps - jnp.minimum(_as_step(step), decay_steps)) / decay_steps
        return (_f32(init_value) - _f32(end_value)) * remaining ** _f32(power) + _f32(end_value)

    return schedule


def _cosine_weight(remaining: jax.Array) -> jax.Array:
    """``(1 - cos(pi * remaining)) / 2``: 0 at ``remaining = 0``, 1 at ``remaining = 1``.

    Computed as ``sin(pi * remaining / 2) ** 2``, which keeps full relative precision where the
    weight is tiny; ``(1 + cos(pi * elapsed)) / 2`` cancels there and loses digits exactly where
    a cosine schedule's LR is smallest. Callers pass the fraction of the phase still to go,
    computed from integer steps so it is exact.
    """
    return jnp.sin(0.5 * jnp.pi * remaining) ** 2


def cosine_decay(init_value: float, decay_steps: int, end_value: float = 0.0) -> Schedule:
    r"""Cosine annealing from ``init_value`` to a floor ``end_value``.

    .. math::
        \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\,
                 \frac{1 + \cos(\pi \min(t, T) / T)}{2}

    Matches PyTorch ``CosineAnnealingLR(T_max=T, eta_min)`` (closed form) on
    :math:`[0, T]`; past :math:`T` PyTorch's cosine rises again, while this schedule stays at
    ``end_value`` as Keras and optax do. Keras ``CosineDecay(alpha)`` is
    ``end_value = alpha * init_value``.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      decay_steps: :math:`T`, ``>= 1``.
      end_value: the floor :math:`\eta_{min} \ge 0` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.cosine_decay(1.0, decay_steps=100, end_value=0.1)
      >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 150)]
      [1.0, 0.55, 0.1, 0.1]

    References:
      Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts,
      arXiv:1608.03983, 2017.
    """
    decay_steps = check_int("decay_steps", decay_steps, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)

    def schedule(step):
        remaining = (decay_steps - jnp.minimum(_as_step(step), decay_steps)) / decay_steps
        return _f32(end_value) + (_f32(init_value) - _f32(end_value)) * _cosine_weight(remaining)

    return schedule


# --------------------------------------------------------------------------------------------
# 8. Cosine with warm restarts (SGDR).
# --------------------------------------------------------------------------------------------


def sgdr(
    init_value: float,
    first_period: int,
    period_mult: float = 1.0,
    peak_decay: float = 1.0,
    end_value: float = 0.0,
) -> Schedule:
    r"""Cosine annealing with warm restarts (SGDR).

    Cycle :math:`i = 0, 1, \dots` starts at :math:`s_i = P (m^i - 1) / (m - 1)` (:math:`i P`
    when :math:`m = 1`) and lasts :math:`P m^i` steps:

    .. math::
        \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\, d^{\,i}\,
                 \frac{1 + \cos(\pi (t - s_i) / (P m^i))}{2}

    with :math:`P` = ``first_period``, :math:`m` = ``period_mult``, :math:`d` =
    ``peak_decay``.

    Matches Keras ``CosineDecayRestarts(first_decay_steps=P, t_mul=m, m_mul=d,
    alpha=end_value / init_value)`` for any :math:`m \ge 1`, and PyTorch
    ``CosineAnnealingWarmRestarts(T_0=P, T_mult=m, eta_min)`` for integer :math:`m` and
    :math:`d = 1`.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      first_period: :math:`P`, length of the first cycle, ``>= 1``.
      period_mult: :math:`m \ge 1`, growth factor of the cycle length (static, finite; may be
        fractional).
      peak_decay: :math:`d > 0`, factor applied to the peak at each restart (traceable; checked
        unless traced).
      end_value: the floor :math:`\eta_{min} \ge 0` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.sgdr(1.0, first_period=10, period_mult=2.0, peak_decay=0.5)
      >>> [round(float(schedule(t)), 6) for t in (0, 5, 10, 20, 30)]
      [1.0, 0.5, 0.5, 0.25, 0.25]

    References:
      Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts,
      arXiv:1608.03983, 2017.
    """
    first_period = check_int("first_period", first_period, 1)
    m = check_float("period_mult", period_mult, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("peak_decay", peak_decay, 0, open_min=True)
    check_magnitude("end_value", end_value, 0)

    def cycle_start(i):
        return first_period * (m**i - 1.0) / (m - 1.0)

    def schedule(step):
        if m == 1.0:
            # Equal periods: the position inside the period is exact integer arithmetic.
            i, x = _divmod_step(step, first_period)
            remaining = (first_period - x) / first_period
        else:
            # Periods grow with t, so float32's relative error in t stays a tiny phase error.
            t = _as_step(step)
            i = jnp.floor(jnp.log1p(t * (m - 1.0) / first_period) / math.log(m))
            # The logarithm can land a hair off an integer at a restart; fix it exactly.
            i = jnp.where(t < cycle_start(i), i - 1, i)
            i = jnp.where(t >= cycle_start(i + 1), i + 1, i)
            remaining = (cycle_start(i + 1) - t) / (first_period * m**i)
        peak = _f32(init_value) - _f32(end_value)
        return _f32(end_value) + peak * _f32(peak_decay) ** i * _cosine_weight(remaining)

    return schedule


# --------------------------------------------------------------------------------------------
# 9. Cyclical learning rates.
# --------------------------------------------------------------------------------------------

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def cyclic(
    base_value: float,
    max_value: float,
    step_size_up: int,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Schedule:
    r"""Cyclical learning rate between ``base_value`` and ``max_value``.

    With :math:`u` = ``step_size_up``, :math:`w` = ``step_size_down``, cycle length
    :math:`c = u + w`, position :math:`x = t \bmod c` and cycle number
    :math:`k = \lfloor t / c \rfloor + 1`:

    .. math::
        \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, h(x)\, g, \qquad
        h(x) = \begin{cases} x / u & x \le u \\ (c - x) / w & x > u \end{cases}

    where :math:`g = 1` (``triangular``), :math:`g = 2^{-(k-1)}` (``triangular2``) or
    :math:`g = \gamma^t` (``exp_range``).

    Args:
      base_value: :math:`\eta_{base} \ge 0`, the lower bound (traceable; checked unless
        traced).
      max_value: :math:`\eta_{max} \ge 0`, the upper bound of the first cycle (traceable;
        checked unless traced).
      step_size_up: :math:`u`, steps of the increasing half, ``>= 1``.
      step_size_down: :math:`w`, steps of the decreasing half, ``>= 1``; defaults to ``u``.
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: :math:`\gamma > 0` of ``exp_range`` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.cyclic(0.1, 1.0, step_size_up=10, mode="triangular2")
      >>> [round(float(schedule(t)), 6) for t in (0, 5, 10, 20, 30)]
      [0.1, 0.55, 1.0, 0.1, 0.55]

    References:
      Matches PyTorch ``CyclicLR`` (scale per cycle for the triangular modes, per iteration for
      ``exp_range``); Smith, Cyclical Learning Rates for Training Neural Networks,
      arXiv:1506.01186, 2017.
    """
    up = check_int("step_size_up", step_size_up, 1)
    down = up if step_size_down is None else check_int("step_size_down", step_size_down, 1)
    mode = check_choice("mode", mode, _CYCLIC_MODES)
    check_magnitude("base_value", base_value, 0)
    check_magnitude("max_value", max_value, 0)
    check_magnitude("gamma", gamma, 0, open_min=True)
    length = up + down

    def schedule(step):
        completed, x = _divmod_step(step, length)  # exact for integer steps, unlike 1 + t/c - k
        height = jnp.where(x <= up, x / up, (length - x) / down)
        if mode == "triangular":
            g = 1.0
        elif mode == "triangular2":
            g = 0.5**completed
        else:
            g = _f32(gamma) ** _as_step(step)
        return _f32(base_value) + (_f32(max_value) - _f32(base_value)) * height * g

    return schedule


# --------------------------------------------------------------------------------------------
# 10. One-cycle.
# --------------------------------------------------------------------------------------------

_ANNEAL_MODES = ("cos", "linear")


def _one_cycle_phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> list[float]:
    """PyTorch's (float) last step of each one-cycle phase, validated to be increasing."""
    total_steps = check_int("total_steps", total_steps, 2)
    pct_start = check_float("pct_start", pct_start, 0, 1, open_min=True, open_max=True)
    ends = [pct_start * total_steps - 1.0]
    if three_phase:
        ends.append(2.0 * pct_start * total_steps - 2.0)
    ends.append(total_steps - 1.0)
    if any(b <= a for a, b in itertools.pairwise([0.0, *ends])):
        raise ValueError(
            f"pct_start={pct_start} with total_steps={total_steps} gives an empty phase "
            f"(phase ends {ends}); need pct_start * total_steps > 1"
            + (" and pct_start < (total_steps + 1) / (2 * total_steps)" if three_phase else "")
        )
    return ends


def _phased(ends: list[float], values: list[jax.Array], anneal: str, step: Any) -> jax.Array:
    """Anneals from values[i] to values[i+1] over phase i ending at ends[i] (PyTorch rule)."""
    t = _as_step(step)
    starts = [0.0, *ends[:-1]]
    result = None
    # Walk phases backwards so the first phase with t <= end wins, as in PyTorch.
    for i in reversed(range(len(ends))):
        remaining = jnp.clip((ends[i] - t) / (ends[i] - starts[i]), 0.0, 1.0)
        weight = _cosine_weight(remaining) if anneal == "cos" else remaining
        value = values[i + 1] + (values[i] - values[i + 1]) * weight
        result = value if result is None else jnp.where(t <= ends[i], value, result)
    return result


def one_cycle(
    total_steps: int,
    max_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    r"""The 1cycle policy: warm up to ``max_value``, then anneal far below the start.

    With :math:`\eta_{init} = \eta_{max} / \text{div}` and
    :math:`\eta_{final} = \eta_{init} / \text{final\_div}`, phase ends are the (float) steps
    :math:`e_1 = p T - 1`, :math:`e_2 = T - 1` (three-phase: :math:`e_1 = pT - 1`,
    :math:`e_2 = 2pT - 2`, :math:`e_3 = T - 1`). In phase :math:`i`, from :math:`e_{i-1}`
    (:math:`e_0 = 0`) to :math:`e_i`, with :math:`q = (t - e_{i-1}) / (e_i - e_{i-1})`
    (clipped to :math:`[0, 1]`):

    .. math::
        \eta_t = a_{i+1} + (a_i - a_{i+1})\frac{1 + \cos(\pi q)}{2}
        \quad\text{or}\quad a_i + (a_{i+1} - a_i)\, q \ \ (\text{linear})

    through the values :math:`a = (\eta_{init}, \eta_{max}, \eta_{final})` (three-phase:
    :math:`(\eta_{init}, \eta_{max}, \eta_{init}, \eta_{final})`). From :math:`T - 1` on the
    LR stays at :math:`\eta_{final}`. PyTorch agrees up to :math:`T - 1`; at :math:`t = T` it
    extrapolates its last phase (:math:`q > 1`, so ``cos`` turns back up and ``linear`` passes
    below :math:`\eta_{final}`), and it raises only past ``total_steps``.

    Args:
      total_steps: :math:`T`, ``>= 2``.
      max_value: :math:`\eta_{max} \ge 0` (traceable; checked unless traced).
      pct_start: :math:`p \in (0, 1)`, fraction of steps spent increasing (static, finite).
      div_factor: :math:`\text{div} > 0` (traceable; checked unless traced).
      final_div_factor: :math:`\text{final\_div} > 0` (traceable; checked unless traced).
      anneal: ``"cos"`` or ``"linear"``.
      three_phase: use fastai's/PyTorch's symmetric three-phase variant.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.one_cycle(100, max_value=1.0, pct_start=0.25, div_factor=10.0)
      >>> [round(float(schedule(t)), 6) for t in (0, 24, 99)]
      [0.1, 1.0, 1e-05]

    References:
      Matches PyTorch ``OneCycleLR``; Smith & Topin, Super-Convergence, arXiv:1708.07120, 2018.
    """
    ends = _one_cycle_phase_ends(total_steps, pct_start, three_phase)
    anneal = check_choice("anneal", anneal, _ANNEAL_MODES)
    check_magnitude("max_value", max_value, 0)
    check_magnitude("div_factor", div_factor, 0, open_min=True)
    check_magnitude("final_div_factor", final_div_factor, 0, open_min=True)

    def schedule(step):
        peak = _f32(max_value)
        initial = peak / _f32(div_factor)
        final = initial / _f32(final_div_factor)
        values = [initial, peak, initial, final] if three_phase else [initial, peak, final]
        return _phased(ends, values, anneal, step)

    return schedule


def one_cycle_momentum(
    total_steps: int,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    r"""The momentum (or Adam :math:`\beta_1`) schedule that mirrors :func:`one_cycle`.

    Momentum moves inversely to the LR over the same phases :math:`[e_{i-1}, e_i]` as
    :func:`one_cycle`, with :math:`q = (t - e_{i-1}) / (e_i - e_{i-1})` clipped to
    :math:`[0, 1]`:

    .. math::
        m_t = a_{i+1} + (a_i - a_{i+1})\frac{1 + \cos(\pi q)}{2}
        \quad\text{or}\quad a_i + (a_{i+1} - a_i)\, q \ \ (\text{linear})

    through the values :math:`a = (m_{max}, m_{base}, m_{max})` (three-phase:
    :math:`(m_{max}, m_{base}, m_{max}, m_{max})`). Feed it to
    ``optax.inject_hyperparams(optax.sgd)(learning_rate=..., momentum=...)``.

    Args:
      total_steps: :math:`T`, ``>= 2``.
      base_momentum: :math:`m_{base} \in [0, 1]`, reached at the LR peak (traceable; checked
        unless traced).
      max_momentum: :math:`m_{max} \in [0, 1]`, at the start and end (traceable; checked
        unless traced).
      pct_start: fraction of steps in the first phase, in ``(0, 1)`` (static, finite).
      anneal: ``"cos"`` or ``"linear"``.
      three_phase: match ``one_cycle(..., three_phase=True)``.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> momentum = lrjax.one_cycle_momentum(100, pct_start=0.25)
      >>> [round(float(momentum(t)), 6) for t in (0, 24, 99)]
      [0.95, 0.85, 0.95]

    References:
      Matches PyTorch ``OneCycleLR(cycle_momentum=True)``; Smith, A disciplined approach to
      neural network hyper-parameters, arXiv:1803.09820, 2018.
    """
    ends = _one_cycle_phase_ends(total_steps, pct_start, three_phase)
    anneal = check_choice("anneal", anneal, _ANNEAL_MODES)
    check_magnitude("base_momentum", base_momentum, 0, 1)
    check_magnitude("max_momentum", max_momentum, 0, 1)

    def schedule(step):
        low, high = _f32(base_momentum), _f32(max_momentum)
        values = [high, low, high, high] if three_phase else [high, low, high]
        return _phased(ends, values, anneal, step)

    return schedule


# --------------------------------------------------------------------------------------------
# 16. Composition (defined before the recipes that use it).
# --------------------------------------------------------------------------------------------


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    r"""Runs ``schedules[i]`` between ``boundaries[i-1]`` and ``boundaries[i]``, validated.

    .. math::
        \eta_t = f_i(t - b_{i-1}) \quad\text{for}\quad b_{i-1} \le t < b_i
        \qquad (b_{-1} = 0,\ b_n = \infty)

    Each piece sees the steps since its own start. This is ``optax.join_schedules`` after
    checking what it silently accepts: ``len(boundaries) == len(schedules) - 1`` and strictly
    increasing boundaries ``>= 1``.

    Args:
      schedules: the pieces, in order.
      boundaries: steps at which the next piece takes over.

    Returns:
      The joined schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.join([lrjax.constant(1.0), lrjax.linear(1.0, 0.0, 10)], [5])
      >>> [round(float(schedule(t)), 6) for t in (4, 5, 10, 15)]
      [1.0, 1.0, 0.5, 0.0]

    References:
      optax ``join_schedules``.
    """
    schedules = list(schedules)
    if not schedules:
        raise ValueError("schedules must hold at least one schedule, got none")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"boundaries must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got {len(boundaries)}"
        )
    boundaries = check_increasing("boundaries", boundaries, 1)
    return optax.join_schedules(schedules, list(boundaries))


def scale(schedule: Schedule, factor: float) -> Schedule:
    r"""Multiplies a schedule by a (traceable) factor: :math:`\eta_t = c\, f(t)`.

    Args:
      schedule: the schedule :math:`f`.
      factor: :math:`c \ge 0` (traceable; checked unless traced).

    Returns:
      The scaled schedule.

    Examples:
      >>> import lrjax
      >>> float(lrjax.scale(lrjax.constant(0.5), 0.2)(0))
      0.1

    References:
      The multiplier of PyTorch ``LambdaLR``; optax ``scale_by_schedule``.
    """
    check_magnitude("factor", factor, 0)

    def scaled(step):
        return _f32(factor) * schedule(step)

    return scaled


def clip(
    schedule: Schedule, min_value: float | None = None, max_value: float | None = None
) -> Schedule:
    r"""Clips a schedule to a floor and/or ceiling: :math:`\eta_t = \mathrm{clip}(f(t), a, b)`.

    Args:
      schedule: the schedule :math:`f`.
      min_value: floor :math:`a \ge 0` (traceable; checked unless traced), or ``None``.
      max_value: ceiling :math:`b \ge a` (traceable; checked unless traced), or ``None``.

    Returns:
      The clipped schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.clip(lrjax.linear(1.0, 0.0, 10), min_value=0.2)
      >>> [round(float(schedule(t)), 6) for t in (5, 10)]
      [0.5, 0.2]

    References:
      The ``eta_min`` / ``min_lr`` floors of PyTorch and timm schedulers.
    """
    if min_value is None and max_value is None:
        raise ValueError("clip needs min_value or max_value (or both), got neither")
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if value is not None:
            check_magnitude(name, value, 0)
    _check_ordered("min_value", min_value, "max_value", max_value, strict=False)

    def clipped(step):
        lr = schedule(step)
        if min_value is not None:
            lr = jnp.maximum(lr, _f32(min_value))
        if max_value is not None:
            lr = jnp.minimum(lr, _f32(max_value))
        return lr

    return clipped


def repeat(schedule: Schedule, period: int) -> Schedule:
    r"""Repeats the first ``period`` steps of a schedule: :math:`\eta_t = f(t \bmod P)`.

    Args:
      schedule: the schedule :math:`f`.
      period: :math:`P`, ``>= 1``.

    Returns:
      The periodic schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.repeat(lrjax.linear(1.0, 0.0, 10), period=10)
      >>> [round(float(schedule(t)), 6) for t in (5, 10, 15)]
      [0.5, 1.0, 0.5]

    References:
      Restarts as in Loshchilov & Hutter, SGDR, arXiv:1608.03983, 2017.
    """
    period = check_int("period", period, 1)

    def repeated(step):
        # The position stays an integer of the step's own kind, so the inner schedule sees an
        # exact step; negative steps count as 0 (Python's % would wrap them into the period).
        return schedule(_split_step(step, period)[1])

    return repeated


# --------------------------------------------------------------------------------------------
# 11. Warmup combinator.
# --------------------------------------------------------------------------------------------

_WARMUP_MODES = ("linear", "exponential", "cosine", "1-sqrt")


def warmup(
    schedule: Schedule, warmup_steps: int, init_value: float = 0.0, mode: str = "linear"
) -> Schedule:
    r"""Prepends a warmup from ``init_value`` to the schedule's first value.

    With :math:`W` = ``warmup_steps``, :math:`\eta_{peak} = f(0)` and :math:`q = t / W`:

    .. math::
        \eta_t = \begin{cases}
          \eta_{init} + (\eta_{peak} - \eta_{init})\, q & \text{linear} \\
          \eta_{init} \left(\eta_{peak} / \eta_{init}\right)^{q} & \text{exponential} \\
          \eta_{init} + (\eta_{peak} - \eta_{init}) \frac{1 - \cos(\pi q)}{2} & \text{cosine} \\
          \eta_{init} + (\eta_{peak} - \eta_{init}) \left(1 - \sqrt{1 - q}\right) & \text{1-sqrt}
        \end{cases} \quad (t < W), \qquad \eta_t = f(t - W) \quad (t \ge W)

    Args:
      schedule: the schedule :math:`f` that follows the warmup.
      warmup_steps: :math:`W \ge 0`; 0 returns ``schedule`` itself.
      init_value: :math:`\eta_{init} \ge 0`, and ``> 0`` for ``exponential`` (traceable;
        checked unless traced).
      mode: ``"linear"``, ``"exponential"``, ``"cosine"`` or ``"1-sqrt"`` (the warmup shapes
        of Hugging Face ``get_wsd_schedule``'s ``warmup_type`` are linear, cosine and 1-sqrt).

    Returns:
      The schedule with warmup.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.warmup(lrjax.cosine_decay(1.0, 100), warmup_steps=10)
      >>> [round(float(schedule(t)), 6) for t in (0, 5, 10, 60)]
      [0.0, 0.5, 1.0, 0.5]

    References:
      Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour,
      arXiv:1706.02677, 2017 (linear); Hugging Face ``transformers`` warmup schedules.
    """
    warmup_steps = check_int("warmup_steps", warmup_steps, 0)
    mode = check_choice("mode", mode, _WARMUP_MODES)
    # The exponential ramp divides by init_value.
    check_magnitude("init_value", init_value, 0, open_min=mode == "exponential")
    if warmup_steps == 0:
        return schedule

    def warm(step):
        # Only used below W; the cap keeps the unused branch of join's where finite.
        q = jnp.minimum(_as_step(step) / warmup_steps, 1.0)
        start, peak = _f32(init_value), schedule(0)
        if mode == "linear":
            return start + (peak - start) * q
        if mode == "cosine":
            return start + (peak - start) * _cosine_weight(q)
        if mode == "1-sqrt":
            # 1 - sqrt(1 - q) == q / (1 + sqrt(1 - q)), which does not cancel for small q.
            return start + (peak - start) * q / (1.0 + jnp.sqrt(1.0 - q))
        return start * (peak / start) ** q

    return join([warm, schedule], [warmup_steps])


_SWA_ANNEAL = ("cos", "linear")


def swa_schedule(
    schedule: Schedule,
    swa_start: int,
    swa_lr: float,
    anneal_steps: int = 10,
    anneal: str = "cos",
) -> Schedule:
    r"""Hands a schedule over to stochastic weight averaging's learning rate at ``swa_start``.

    From :math:`\eta_0 = f(S)`, the value of the schedule where SWA takes over, the LR anneals
    to the SWA learning rate :math:`\eta_{swa}` over :math:`A` steps and then stays there:

    .. math::
        \eta_t = f(t) \ \ (t < S), \qquad
        \eta_t = \eta_0 + (\eta_{swa} - \eta_0)\,
                  \alpha\!\left(\min\!\left(\tfrac{t - S}{A}, 1\right)\right) \ \ (t \ge S)

    with :math:`\alpha(q) = (1 - \cos \pi q)/2` (``"cos"``) or :math:`q` (``"linear"``);
    :math:`A = 0` jumps straight to :math:`\eta_{swa}`.

    Args:
      schedule: the schedule :math:`f` before SWA.
      swa_start: :math:`S \ge 0`, the step at which SWA's schedule takes over.
      swa_lr: :math:`\eta_{swa} \ge 0` (traceable; checked unless traced).
      anneal_steps: :math:`A \ge 0`.
      anneal: ``"cos"`` or ``"linear"``.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.swa_schedule(lrjax.constant(1.0), 10, swa_lr=0.5, anneal_steps=4)
      >>> [round(float(schedule(t)), 6) for t in (9, 10, 12, 14, 100)]
      [1.0, 1.0, 0.75, 0.5, 0.5]

    References:
      Matches PyTorch ``torch.optim.swa_utils.SWALR`` (its starting LR being
      :math:`f(S)`); Izmailov et al., Averaging Weights Leads to Wider Optima and Better
      Generalization, arXiv:1803.05407, 2018.
    """
    swa_start = check_int("swa_start", swa_start, 0)
    anneal_steps = check_int("anneal_steps", anneal_steps, 0)
    anneal = check_choice("anneal", anneal, _SWA_ANNEAL)
    check_magnitude("swa_lr", swa_lr, 0)

    def swa_part(step):
        q = jnp.minimum(_as_step(step) / max(anneal_steps, 1), 1.0)
        if anneal_steps == 0:
            q = jnp.ones_like(q)
        alpha = _cosine_weight(q) if anneal == "cos" else q
        # Weighted sum rather than start + (swa - start) * alpha: exact at both ends.
        return schedule(swa_start) * (1.0 - alpha) + _f32(swa_lr) * alpha

    if swa_start == 0:
        return swa_part
    return join([schedule, swa_part], [swa_start])


# --------------------------------------------------------------------------------------------
# 12-13. Transformer recipes and warmup-stable-decay.
# --------------------------------------------------------------------------------------------


def _warmup_and_decay_steps(
    warmup_steps, total_steps, names: tuple[str, str] = ("warmup_steps", "total_steps")
) -> tuple[int, int]:
    warmup_name, total_name = names
    total_steps = check_int(total_name, total_steps, 1)
    warmup_steps = to_steps(warmup_steps, total_steps, warmup_name)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"{warmup_name} must be in [0, {total_name}) = [0, {total_steps}), got {warmup_steps}"
        )
    return warmup_steps, total_steps - warmup_steps


def warmup_linear_decay(
    peak_value: float,
    warmup_steps: int | float,
    total_steps: int,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> Schedule:
    r"""Linear warmup to ``peak_value``, then linear decay to ``end_value`` at ``total_steps``.

    .. math::
        \eta_t = \begin{cases}
          \eta_{init} + (\eta_{peak} - \eta_{init})\, t / W & t < W \\
          \eta_{end} + (\eta_{peak} - \eta_{end})
            \max\!\left(0, \frac{T - t}{T - W}\right) & t \ge W
        \end{cases}

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_steps: :math:`W`, steps or a fraction of ``total_steps``; ``0 <= W < T``.
      total_steps: :math:`T \ge 1`.
      end_value: :math:`\eta_{end} \ge 0` (traceable; checked unless traced).
      init_value: :math:`\eta_{init} \ge 0` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.warmup_linear_decay(1.0, warmup_steps=10, total_steps=110)
      >>> [round(float(schedule(t)), 6) for t in (5, 10, 60, 110)]
      [0.5, 1.0, 0.5, 0.0]

    References:
      Matches Hugging Face ``get_linear_schedule_with_warmup`` (``end_value=0``,
      ``init_value=0``); Devlin et al., BERT, arXiv:1810.04805, 2019.
    """
    warmup_steps, decay_steps = _warmup_and_decay_steps(warmup_steps, total_steps)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    return warmup(linear(peak_value, end_value, decay_steps), warmup_steps, init_value)


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int | float,
    total_steps: int,
    end_value: float = 0.0,
    init_value: float = 0.0,
    num_cycles: float = 0.5,
) -> Schedule:
    r"""Linear warmup to ``peak_value``, then cosine decay to ``end_value`` at ``total_steps``.

    With progress :math:`q = \mathrm{clip}((t - W) / (T - W), 0, 1)` after warmup:

    .. math::
        \eta_t = \eta_{end} + (\eta_{peak} - \eta_{end})
                 \frac{1 + \cos(2\pi n q)}{2}

    and a linear warmup from ``init_value`` before :math:`W`. :math:`n = 0.5` is a half cosine.

    Matches Hugging Face ``get_cosine_schedule_with_warmup`` (``end_value=0``) and
    ``get_cosine_with_min_lr_schedule_with_warmup`` (``min_lr=end_value``) up to
    :math:`T`; past :math:`T` the progress is clipped (HF's cosine rises again).
    Unlike optax ``warmup_cosine_decay_schedule``, ``peak_value`` never reaches a Python
    ``if``, so it can be vmapped.

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_steps: :math:`W`, steps or a fraction of ``total_steps``; ``0 <= W < T``.
      total_steps: :math:`T \ge 1`.
      end_value: :math:`\eta_{end} \ge 0`, the floor (traceable; checked unless traced).
      init_value: start of the warmup, ``>= 0`` (traceable; checked unless traced).
      num_cycles: :math:`n > 0`, number of cosine periods after warmup (traceable; checked
        unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.warmup_cosine_decay(1.0, warmup_steps=10, total_steps=110)
      >>> [round(float(schedule(t)), 6) for t in (5, 10, 60, 110)]
      [0.5, 1.0, 0.5, 0.0]

    References:
      Loshchilov & Hutter, SGDR, arXiv:1608.03983, 2017; Hugging Face ``transformers``
      ``get_cosine_schedule_with_warmup``.
    """
    warmup_steps, decay_steps = _warmup_and_decay_steps(warmup_steps, total_steps)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    check_magnitude("num_cycles", num_cycles, 0, open_min=True)

    def decay(step):
        s = jnp.minimum(_as_step(step), decay_steps)
        # (1 + cos(2 pi n q)) / 2 == sin^2(pi/2 (1 - 2 n q)), written so no digits cancel.
        factor = _cosine_weight((decay_steps - 2.0 * _f32(num_cycles) * s) / decay_steps)
        return _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * factor

    return warmup(decay, warmup_steps, init_value)


def cosine_with_hard_restarts(
    peak_value: float,
    warmup_steps: int | float,
    total_steps: int,
    num_cycles: int = 1,
    end_value: float = 0.0,
    init_value: float = 0.0,
) -> Schedule:
    r"""Linear warmup, then ``num_cycles`` cosine decays that restart at the peak.

    With :math:`D = T - W`, :math:`s = t - W` and :math:`n` = ``num_cycles``:

    .. math::
        \eta_t = \eta_{end} + (\eta_{peak} - \eta_{end})\,
                 \frac{1 + \cos(\pi\, ((n s) \bmod D) / D)}{2}
        \quad (W \le t < T), \qquad \eta_t = \eta_{end} \quad (t \ge T)

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_steps: :math:`W`, steps or a fraction of ``total_steps``; ``0 <= W < T``.
      total_steps: :math:`T \ge 1`.
      num_cycles: :math:`n \ge 1`, the number of hard restarts plus one. The phase
        :math:`(n s) \bmod D` is exact integer arithmetic for integer steps when
        :math:`n D < 2^{31}`, and float32 beyond.
      end_value: :math:`\eta_{end} \ge 0` (traceable; checked unless traced).
      init_value: start of the warmup, ``>= 0`` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.cosine_with_hard_restarts(1.0, 0, total_steps=100, num_cycles=2)
      >>> [round(float(schedule(t)), 6) for t in (0, 25, 50, 75, 100)]
      [1.0, 0.5, 1.0, 0.5, 0.0]

    References:
      Matches Hugging Face ``get_cosine_with_hard_restarts_schedule_with_warmup``;
      Loshchilov & Hutter, SGDR, arXiv:1608.03983, 2017.
    """
    warmup_steps, decay_steps = _warmup_and_decay_steps(warmup_steps, total_steps)
    num_cycles = check_int("num_cycles", num_cycles, 1)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    fits_int32 = num_cycles * decay_steps <= _INT32_MAX

    def decay(step):
        # Flat from D on, so clamp there; then (n s) mod D on integers is exact, where HF's
        # (n q) % 1 would round, and so would n s in float32 from 2**24 on.
        s = _clamp_step(step, decay_steps)
        if jnp.issubdtype(s.dtype, jnp.integer) and not fits_int32:
            s = s.astype(jnp.float32)
        phase = jnp.mod(num_cycles * s, decay_steps).astype(jnp.float32)
        remaining = (decay_steps - phase) / decay_steps
        value = _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * _cosine_weight(remaining)
        return jnp.where(s < decay_steps, value, _f32(end_value))

    return warmup(decay, warmup_steps, init_value)


def inverse_sqrt(
    peak_value: float,
    warmup_steps: int,
    timescale: int | None = None,
    init_value: float = 0.0,
) -> Schedule:
    r"""Linear warmup, then inverse-square-root decay.

    With timescale :math:`\tau` (default :math:`W`, or 10 000 when :math:`W = 0`):

    .. math::
        \eta_t = \eta_{peak} \sqrt{\frac{\tau}{t - W + \tau}} \quad (t \ge W)

    and a linear warmup from ``init_value`` before :math:`W`. With :math:`\tau = W` this is
    the Transformer's :math:`\eta_{peak}\sqrt{W / t}`.

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_steps: :math:`W \ge 0`.
      timescale: :math:`\tau \ge 1`, or ``None`` for the default.
      init_value: start of the warmup, ``>= 0`` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.inverse_sqrt(1.0, warmup_steps=100)
      >>> [round(float(schedule(t)), 6) for t in (50, 100, 400)]
      [0.5, 1.0, 0.5]

    References:
      Matches Hugging Face ``get_inverse_sqrt_schedule``; Vaswani et al., Attention Is All You
      Need, arXiv:1706.03762, 2017.
    """
    warmup_steps = check_int("warmup_steps", warmup_steps, 0)
    if timescale is None:
        timescale = warmup_steps or 10_000
    timescale = check_int("timescale", timescale, 1)
    _check_values(peak_value=peak_value, init_value=init_value)

    def decay(step):
        return _f32(peak_value) * jnp.sqrt(timescale / (_as_step(step) + timescale))

    return warmup(decay, warmup_steps, init_value)


# Cooldown shapes g as functions of the remaining fraction r = 1 - q of the cooldown, so that
# none of them cancels digits near the end: 1 - sqrt(q) == r / (1 + sqrt(1 - r)).
_COOLDOWN_SHAPES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda r: r,
    "cosine": _cosine_weight,
    "1-sqrt": lambda r: r / (1.0 + jnp.sqrt(1.0 - r)),
}


def warmup_stable_decay(
    peak_value: float,
    total_steps: int,
    warmup_steps: int | float,
    decay_steps: int | float,
    decay_type: str = "linear",
    end_value: float = 0.0,
    init_value: float = 0.0,
    warmup_type: str = "linear",
) -> Schedule:
    r"""Warmup–stable–decay (WSD, "trapezoidal"): warm up, hold the peak, then cool down.

    With :math:`W` warmup steps, :math:`D` cooldown steps, total :math:`T`, the cooldown starts
    at :math:`S = T - D` and :math:`q = \mathrm{clip}((t - S) / D, 0, 1)`:

    .. math::
        \eta_t = \eta_{end} + (\eta_{peak} - \eta_{end})\, g(q) \quad (t \ge W), \qquad
        g(q) \in \{\, 1 - q,\ \tfrac{1 + \cos \pi q}{2},\ 1 - \sqrt{q} \,\}

    for ``decay_type`` ``"linear"``, ``"cosine"``, ``"1-sqrt"``; a warmup from ``init_value``
    before :math:`W` (shaped by ``warmup_type``, see :func:`warmup`); and :math:`\eta_{end}`
    from :math:`T` on.

    Matches Hugging Face ``get_wsd_schedule`` (with ``num_cycles=0.5``) with ``init_value =
    end_value = min_lr_ratio * peak`` (HF's warmup starts at the minimum LR; its default
    ``decay_type`` is cosine).

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      total_steps: :math:`T \ge 1`.
      warmup_steps: :math:`W`, steps or a fraction of ``total_steps``.
      decay_steps: :math:`D`, steps or a fraction of ``total_steps``; ``W + D <= T``.
      decay_type: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.
      end_value: :math:`\eta_{end} \ge 0` (traceable; checked unless traced).
      init_value: start of the warmup, ``>= 0`` (traceable; checked unless traced).
      warmup_type: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (or ``"exponential"``), the
        ``mode`` of :func:`warmup`.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.warmup_stable_decay(1.0, 100, warmup_steps=10, decay_steps=0.2)
      >>> [round(float(schedule(t)), 6) for t in (5, 10, 79, 80, 90, 100)]
      [0.5, 1.0, 1.0, 1.0, 0.5, 0.0]

    References:
      Hägele et al., Scaling Laws and Compute-Optimal Training beyond Fixed Training
      Durations, arXiv:2405.18392, 2024; Hu et al., MiniCPM, arXiv:2404.06395, 2024.
    """
    total_steps = check_int("total_steps", total_steps, 1)
    warmup_steps = to_steps(warmup_steps, total_steps, "warmup_steps")
    decay_steps = to_steps(decay_steps, total_steps, "decay_steps")
    decay_type = check_choice("decay_type", decay_type, tuple(_COOLDOWN_SHAPES))
    warmup_type = check_choice("warmup_type", warmup_type, _WARMUP_MODES)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    if decay_steps < 1 or warmup_steps + decay_steps > total_steps:
        raise ValueError(
            f"decay_steps must be in [1, total_steps - warmup_steps] = "
            f"[1, {total_steps - warmup_steps}], got {decay_steps}"
        )
    shape = _COOLDOWN_SHAPES[decay_type]

    def stable_then_decay(step):
        remaining = jnp.clip((total_steps - warmup_steps - _as_step(step)) / decay_steps, 0.0, 1.0)
        return _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * shape(remaining)

    return warmup(stable_then_decay, warmup_steps, init_value, warmup_type)


# --------------------------------------------------------------------------------------------
# 14-15. Snapshot ensembles and tanh decay.
# --------------------------------------------------------------------------------------------


def _snapshot_cycle_length(total_steps: int, num_cycles: int) -> int:
    total_steps = check_int("total_steps", total_steps, 1)
    num_cycles = check_int("num_cycles", num_cycles, 1)
    if num_cycles > total_steps:
        raise ValueError(
            f"num_cycles must be in [1, total_steps] = [1, {total_steps}], got {num_cycles}"
        )
    length = -(-total_steps // num_cycles)
    if (num_cycles - 1) * length >= total_steps:
        raise ValueError(
            f"num_cycles={num_cycles} leaves the last cycle empty: cycles of "
            f"ceil({total_steps}/{num_cycles}) = {length} steps fill total_steps={total_steps} "
            f"in fewer cycles; choose num_cycles so that (num_cycles - 1) * {length} < "
            f"{total_steps}"
        )
    return length


def snapshot_ensemble(init_value: float, total_steps: int, num_cycles: int) -> Schedule:
    r"""The cyclic cosine schedule of snapshot ensembles.

    With cycle length :math:`L = \lceil T / M \rceil`:

    .. math::
        \eta_t = \frac{\eta_0}{2}\left(\cos\!\left(\frac{\pi\, (t \bmod L)}{L}\right) + 1\right)

    A snapshot of the parameters is taken at the end of every cycle, after the updates counted
    by :func:`snapshot_steps`.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      total_steps: :math:`T \ge 1`.
      num_cycles: :math:`M \ge 1`, the number of cycles (and snapshots).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.snapshot_ensemble(0.2, total_steps=300, num_cycles=3)
      >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 150)]
      [0.2, 0.1, 0.2, 0.1]

    References:
      Huang et al., Snapshot Ensembles: Train 1, get M for free, arXiv:1704.00109, 2017.
    """
    length = _snapshot_cycle_length(total_steps, num_cycles)
    check_magnitude("init_value", init_value, 0)

    def schedule(step):
        _, x = _divmod_step(step, length)
        return _f32(init_value) * _cosine_weight((length - x) / length)

    return schedule


def snapshot_steps(total_steps: int, num_cycles: int) -> tuple[int, ...]:
    r"""Numbers of updates after which :func:`snapshot_ensemble` takes its snapshots.

    .. math:: n_k = \min(k \lceil T / M \rceil, T), \qquad k = 1, \dots, M

    The snapshot after :math:`n_k` updates holds the parameters produced by the update at
    step :math:`n_k - 1`, the last (smallest-LR) step of cycle :math:`k`.

    Args:
      total_steps: :math:`T \ge 1`.
      num_cycles: :math:`M \ge 1`.

    Returns:
      A tuple of :math:`M` increasing ints, the last being :math:`T`.

    Examples:
      >>> import lrjax
      >>> lrjax.snapshot_steps(300, 3), lrjax.snapshot_steps(10, 4)
      ((100, 200, 300), (3, 6, 9, 10))

    References:
      Huang et al., Snapshot Ensembles: Train 1, get M for free, arXiv:1704.00109, 2017.
    """
    length = _snapshot_cycle_length(total_steps, num_cycles)
    return tuple(min(k * length, total_steps) for k in range(1, num_cycles + 1))


def tanh_decay(
    init_value: float,
    total_steps: int,
    end_value: float = 0.0,
    lower_bound: float = -7.0,
    upper_bound: float = 3.0,
) -> Schedule:
    r"""Hyperbolic-tangent decay.

    With :math:`r = t / T`:

    .. math::
        \eta_t = \eta_{end} + \frac{\eta_0 - \eta_{end}}{2}
                 \left(1 - \tanh\!\left(L (1 - r) + U r\right)\right) \quad (t < T),
        \qquad \eta_t = \eta_{end} \quad (t \ge T)

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      total_steps: :math:`T \ge 1`.
      end_value: :math:`\eta_{end} \ge 0` (traceable; checked unless traced).
      lower_bound: :math:`L`, finite (traceable; checked unless traced).
      upper_bound: :math:`U`, finite (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.tanh_decay(1.0, total_steps=100)
      >>> [round(float(schedule(t)), 4) for t in (0, 70, 100)]
      [1.0, 0.5, 0.0]

    References:
      Matches timm ``TanhLRScheduler`` (one cycle, no warmup, no noise); Hsueh et al.,
      Stochastic Gradient Descent with Hyperbolic-Tangent Decay on Classification,
      arXiv:1806.01593, 2019.
    """
    total_steps = check_int("total_steps", total_steps, 1)
    _check_values(init_value=init_value, end_value=end_value)
    check_magnitude("lower_bound", lower_bound)
    check_magnitude("upper_bound", upper_bound)

    def schedule(step):
        t = _as_step(step)
        arg = (_f32(lower_bound) * (total_steps - t) + _f32(upper_bound) * t) / total_steps
        # (1 - tanh(x)) / 2 == sigmoid(-2x), without cancellation as tanh(x) nears 1.
        value = _f32(end_value) + (_f32(init_value) - _f32(end_value)) * jax.nn.sigmoid(-2.0 * arg)
        return jnp.where(t < total_steps, value, _f32(end_value))

    return schedule


# --------------------------------------------------------------------------------------------
# 17. Lookup by name.
# --------------------------------------------------------------------------------------------

SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "step": step_decay,
    "multistep": multistep_decay,
    "piecewise_constant": piecewise_constant,
    "exponential": exponential_decay,
    "inverse_time": inverse_time_decay,
    "invscaling": invscaling,
    "optimal": optimal,
    "polynomial": polynomial_decay,
    "cosine": cosine_decay,
    "sgdr": sgdr,
    "cyclic": cyclic,
    "one_cycle": one_cycle,
    "warmup_linear_decay": warmup_linear_decay,
    "warmup_cosine_decay": warmup_cosine_decay,
    "cosine_with_hard_restarts": cosine_with_hard_restarts,
    "inverse_sqrt": inverse_sqrt,
    "wsd": warmup_stable_decay,
    "snapshot_ensemble": snapshot_ensemble,
    "tanh": tanh_decay,
    "one_cycle_momentum": one_cycle_momentum,
}
_BY_NAME = {**SCHEDULES, **{factory.__name__: factory for factory in SCHEDULES.values()}}

# Arguments that are durations (or sequences of them) and so may be given as fractions.
_DURATION_ARGS = frozenset(
    {
        "transition_steps",
        "transition_begin",
        "step_size",
        "milestones",
        "boundaries",
        "decay_steps",
        "first_period",
        "step_size_up",
        "step_size_down",
        "warmup_steps",
        "timescale",
    }
)


# Hugging Face ``transformers`` scheduler names (its ``SchedulerType``), with HF's argument
# names and HF's semantics. The peak is ``learning_rate``: the LR that HF's ``LambdaLR``
# multiplies by each lambda. Every builder validates its arguments under HF's names.

_HF_STEPS = ("num_warmup_steps", "num_training_steps")


def _hf_linear(learning_rate, num_warmup_steps, num_training_steps) -> Schedule:
    """HF ``get_linear_schedule_with_warmup``."""
    w, _ = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    check_magnitude("learning_rate", learning_rate, 0)
    return warmup_linear_decay(learning_rate, w, num_training_steps)


def _hf_cosine(learning_rate, num_warmup_steps, num_training_steps, num_cycles=0.5) -> Schedule:
    """HF ``get_cosine_schedule_with_warmup``."""
    w, _ = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    check_magnitude("learning_rate", learning_rate, 0)
    return warmup_cosine_decay(learning_rate, w, num_training_steps, num_cycles=num_cycles)


def _hf_cosine_with_restarts(
    learning_rate, num_warmup_steps, num_training_steps, num_cycles=1
) -> Schedule:
    """HF ``get_cosine_with_hard_restarts_schedule_with_warmup``."""
    w, _ = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    check_magnitude("learning_rate", learning_rate, 0)
    return cosine_with_hard_restarts(learning_rate, w, num_training_steps, num_cycles)


def _hf_polynomial(
    learning_rate, num_warmup_steps, num_training_steps, lr_end=1e-7, power=1.0
) -> Schedule:
    """HF ``get_polynomial_decay_schedule_with_warmup`` (it also requires lr_end < lr)."""
    w, d = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    _check_values(learning_rate=learning_rate, lr_end=lr_end)
    check_magnitude("power", power, 0, open_min=True)
    _check_ordered("lr_end", lr_end, "learning_rate", learning_rate, strict=True)
    return warmup(polynomial_decay(learning_rate, lr_end, d, power), w)


def _hf_constant(learning_rate, num_training_steps=None) -> Schedule:
    """HF ``get_constant_schedule`` (HF's ``get_scheduler`` ignores the step counts here)."""
    check_magnitude("learning_rate", learning_rate, 0)
    return constant(learning_rate)


def _hf_constant_with_warmup(learning_rate, num_warmup_steps, num_training_steps=None) -> Schedule:
    """HF ``get_constant_schedule_with_warmup``."""
    check_int("num_warmup_steps", num_warmup_steps, 0)
    check_magnitude("learning_rate", learning_rate, 0)
    return warmup(constant(learning_rate), num_warmup_steps)


def _hf_inverse_sqrt(
    learning_rate, num_warmup_steps, timescale=None, num_training_steps=None
) -> Schedule:
    """HF ``get_inverse_sqrt_schedule``."""
    check_int("num_warmup_steps", num_warmup_steps, 0)
    check_magnitude("learning_rate", learning_rate, 0)
    return inverse_sqrt(learning_rate, num_warmup_steps, timescale)


def _hf_floor(learning_rate, min_lr, min_lr_rate) -> Any:
    """HF's floor: exactly one of ``min_lr`` and ``min_lr_rate`` (a fraction of the peak)."""
    if (min_lr is None) == (min_lr_rate is None):
        raise ValueError(
            "exactly one of min_lr or min_lr_rate must be given (as in Hugging Face), got "
            f"min_lr={min_lr!r}, min_lr_rate={min_lr_rate!r}"
        )
    if min_lr is not None:
        check_magnitude("min_lr", min_lr, 0)
        return min_lr
    check_magnitude("min_lr_rate", min_lr_rate, 0, 1)
    return learning_rate * min_lr_rate


def _hf_cosine_with_min_lr(
    learning_rate,
    num_warmup_steps,
    num_training_steps,
    num_cycles=0.5,
    min_lr=None,
    min_lr_rate=None,
) -> Schedule:
    """HF ``get_cosine_with_min_lr_schedule_with_warmup``."""
    w, _ = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    check_magnitude("learning_rate", learning_rate, 0)
    floor = _hf_floor(learning_rate, min_lr, min_lr_rate)
    return warmup_cosine_decay(learning_rate, w, num_training_steps, floor, num_cycles=num_cycles)


def _hf_cosine_warmup_with_min_lr(
    learning_rate,
    num_warmup_steps,
    num_training_steps,
    num_cycles=0.5,
    min_lr=None,
    min_lr_rate=None,
    warmup_lr_rate=None,
) -> Schedule:
    r"""HF ``get_cosine_with_min_lr_schedule_with_warmup_lr_rate``.

    HF counts one step ahead: with :math:`r` = ``warmup_lr_rate`` (default :math:`1/W`),

    .. math::
        \eta_t = \eta\,\bigl(r + (1 - r)\, t / \max(1, W - 1)\bigr) \ \ (t < W), \qquad
        \eta_t = \eta_{min} + (\eta - \eta_{min}) \frac{1 + \cos(2 \pi n q)}{2}, \ \
        q = \frac{t - W + 1}{T - W} \ \ (t \ge W)

    so the floor is reached at :math:`t = T - 1` (``r = 1/W`` gives HF's default
    :math:`(t + 1) / W`). Past that :math:`q` is held at 1 (HF's cosine turns back up).
    """
    w, d = _warmup_and_decay_steps(num_warmup_steps, num_training_steps, _HF_STEPS)
    check_magnitude("learning_rate", learning_rate, 0)
    floor = _hf_floor(learning_rate, min_lr, min_lr_rate)
    if warmup_lr_rate is None:
        warmup_lr_rate = 1.0 / max(1, w)
    check_magnitude("warmup_lr_rate", warmup_lr_rate, 0, 1)
    cosine = warmup_cosine_decay(learning_rate, 0, d, floor, num_cycles=num_cycles)

    def one_step_ahead(step):
        # Clamped first, so the + 1 cannot overflow an int32 step; the cosine is flat from d.
        return cosine(_clamp_step(step, d) + 1)

    if w == 0:
        return one_step_ahead
    ramp = linear(learning_rate * warmup_lr_rate, learning_rate, max(1, w - 1))
    return join([ramp, one_step_ahead], [w])


def _hf_warmup_stable_decay(
    learning_rate,
    num_warmup_steps,
    num_decay_steps,
    num_training_steps=None,
    num_stable_steps=None,
    warmup_type="linear",
    decay_type="cosine",
    min_lr_ratio=0.0,
    num_cycles=0.5,
) -> Schedule:
    """HF ``get_wsd_schedule`` (only its default half cosine, ``num_cycles=0.5``)."""
    w = check_int("num_warmup_steps", num_warmup_steps, 0)
    d = check_int("num_decay_steps", num_decay_steps, 1)
    if num_stable_steps is None:
        if num_training_steps is None:
            raise ValueError("num_training_steps or num_stable_steps must be given, got neither")
        total = check_int("num_training_steps", num_training_steps, 1)
        if w + d > total:
            raise ValueError(
                f"num_warmup_steps + num_decay_steps must be <= num_training_steps = {total}, "
                f"got {w} + {d}"
            )
    else:
        total = w + check_int("num_stable_steps", num_stable_steps, 0) + d
        # HF warns and uses num_stable_steps; a silent mismatch is better caught here.
        if num_training_steps is not None and num_training_steps != total:
            raise ValueError(
                f"num_training_steps={num_training_steps!r} disagrees with num_warmup_steps + "
                f"num_stable_steps + num_decay_steps = {total}; give one of them"
            )
    # HF's num_cycles bends the cooldown into num_cycles waves; lrjax's cooldown is one half.
    if check_float("num_cycles", num_cycles) != 0.5:
        raise ValueError(f"num_cycles must be 0.5 (a half-cosine cooldown), got {num_cycles!r}")
    check_choice("warmup_type", warmup_type, ("linear", "cosine", "1-sqrt"))
    check_magnitude("learning_rate", learning_rate, 0)
    check_magnitude("min_lr_ratio", min_lr_ratio, 0, 1)
    floor = learning_rate * min_lr_ratio
    return warmup_stable_decay(learning_rate, total, w, d, decay_type, floor, floor, warmup_type)


def _hf_reduce_lr_on_plateau(**kwargs: Any) -> Schedule:
    raise ValueError(
        "'reduce_lr_on_plateau' is not a schedule of the step: it reacts to an evaluation "
        "metric. Use lrjax.reduce_on_plateau(mode=..., factor=..., patience=...), a pure "
        "controller whose state.scale multiplies a schedule such as lrjax.constant(lr) (and "
        "lrjax.sweep.train(..., plateau=...) in a training run)"
    )


# name -> (builder, HF function it reproduces, lrjax factory it builds, note for the table)
_HF_SCHEDULES: dict[str, tuple[Callable[..., Schedule], str, str, str]] = {
    "linear": (_hf_linear, "get_linear_schedule_with_warmup", "warmup_linear_decay", ""),
    "cosine": (
        _hf_cosine,
        "get_cosine_schedule_with_warmup",
        "warmup_cosine_decay",
        "past num_training_steps the LR stays at the floor (HF's cosine turns back up)",
    ),
    "cosine_with_restarts": (
        _hf_cosine_with_restarts,
        "get_cosine_with_hard_restarts_schedule_with_warmup",
        "cosine_with_hard_restarts",
        "num_cycles is an integer >= 1",
    ),
    "polynomial": (
        _hf_polynomial,
        "get_polynomial_decay_schedule_with_warmup",
        "warmup + polynomial_decay",
        "lr_end < learning_rate, as HF requires",
    ),
    "constant": (_hf_constant, "get_constant_schedule", "constant", "step counts are ignored"),
    "constant_with_warmup": (
        _hf_constant_with_warmup,
        "get_constant_schedule_with_warmup",
        "warmup + constant",
        "num_training_steps is ignored",
    ),
    "inverse_sqrt": (
        _hf_inverse_sqrt,
        "get_inverse_sqrt_schedule",
        "inverse_sqrt",
        "num_training_steps is ignored",
    ),
    "reduce_lr_on_plateau": (
        _hf_reduce_lr_on_plateau,
        "get_reduce_on_plateau_schedule",
        "lrjax.reduce_on_plateau",
        "not a schedule: a ValueError points to lrjax.reduce_on_plateau",
    ),
    "cosine_with_min_lr": (
        _hf_cosine_with_min_lr,
        "get_cosine_with_min_lr_schedule_with_warmup",
        "warmup_cosine_decay",
        "exactly one of min_lr, min_lr_rate; past num_training_steps the LR stays at min_lr",
    ),
    "cosine_warmup_with_min_lr": (
        _hf_cosine_warmup_with_min_lr,
        "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
        "join(linear, warmup_cosine_decay one step ahead)",
        "HF's one-step-ahead variant: min_lr is reached at num_training_steps - 1",
    ),
    "warmup_stable_decay": (
        _hf_warmup_stable_decay,
        "get_wsd_schedule",
        "warmup_stable_decay",
        "num_cycles must be 0.5; num_training_steps and num_stable_steps must agree",
    ),
}

# Arguments that mark a call as Hugging Face's where a name is both HF's and lrjax's: no lrjax
# factory takes them.
_HF_MARKERS = frozenset({"learning_rate", "num_warmup_steps", "num_training_steps"})
_HF_DURATION_ARGS = frozenset(
    {"num_warmup_steps", "num_decay_steps", "num_stable_steps", "timescale"}
)


def _arguments(build: Callable[..., Any], hide: frozenset[str] = frozenset()) -> list[str]:
    """``name`` or ``name=default`` for each argument of ``build``, in order."""
    out = []
    for p in inspect.signature(build).parameters.values():
        if p.name in hide or p.kind is p.VAR_KEYWORD:
            continue
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return out


def _resolve(name: str, kwargs: dict[str, Any]) -> tuple[Callable[..., Schedule], bool]:
    """The builder for ``name`` (HF's or lrjax's) and whether it is Hugging Face's."""
    hf = _HF_SCHEDULES.get(name)
    factory = _BY_NAME.get(name)
    if hf is None and factory is None:
        raise ValueError(f"name must be one of {sorted({*_BY_NAME, *_HF_SCHEDULES})}, got {name!r}")
    if hf is not None and (factory is None or not _HF_MARKERS.isdisjoint(kwargs)):
        return hf[0], True
    return factory, False


def get(name: str, *, total_steps: int | None = None, **kwargs: Any) -> Schedule:
    """Builds a schedule by name: lrjax's names, and Hugging Face's with HF's semantics.

    ``name`` is one of:

    * a short key of :data:`SCHEDULES` (``"cosine"``, ``"wsd"``, ...) or a factory's own name
      (``"cosine_decay"``, ``"warmup_stable_decay"``, ...), taking that factory's arguments;
    * a Hugging Face ``transformers`` scheduler name (``SchedulerType``: ``"linear"``,
      ``"cosine"``, ``"cosine_with_restarts"``, ``"polynomial"``, ``"constant"``,
      ``"constant_with_warmup"``, ``"inverse_sqrt"``, ``"cosine_with_min_lr"``,
      ``"cosine_warmup_with_min_lr"``, ``"warmup_stable_decay"``), taking HF's argument names
      (the peak as ``learning_rate``, ``num_warmup_steps``, ``num_training_steps`` and the
      extras of HF's ``scheduler_specific_kwargs``) and giving HF's schedule: the LR of HF's
      ``LambdaLR`` after ``t`` calls of ``scheduler.step()``. ``"reduce_lr_on_plateau"`` is
      not a schedule and raises, pointing to :func:`lrjax.reduce_on_plateau`.

    Where a name is both (``linear``, ``cosine``, ``polynomial``, ``constant``,
    ``inverse_sqrt``, ``warmup_stable_decay``), the arguments decide: any of HF's
    ``learning_rate``, ``num_warmup_steps``, ``num_training_steps`` (which no lrjax factory
    takes) selects HF's schedule, otherwise lrjax's factory. So ``get("linear",
    learning_rate=..., num_warmup_steps=..., num_training_steps=...)`` is HF's warmup and
    linear decay, while ``get("linear", init_value=..., end_value=..., transition_steps=...)``
    stays :func:`linear`. ``names_table()`` lists every name with its arguments.

    Every duration argument (``warmup_steps``, ``decay_steps``, ``step_size``, ``milestones``,
    ``num_warmup_steps``, ``num_decay_steps``, ...) may be an int number of steps or a float
    fraction of the run length, converted with :func:`to_steps`. The run length is
    ``total_steps``, which is also passed on to factories that take it; for HF names it is
    ``num_training_steps``, and ``total_steps`` stands for it when it is not given.

    Args:
      name: an lrjax or Hugging Face schedule name.
      total_steps: the run length that fractions refer to.
      **kwargs: the schedule's other arguments.

    Returns:
      The schedule.

    Raises:
      ValueError: for an unknown name, or an unknown or missing argument (the message lists
        the arguments the name accepts), and for any invalid argument value.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.get("multistep", total_steps=1000, init_value=1.0,
      ...                      milestones=[0.5, 0.75], gamma=0.1)
      >>> [round(float(schedule(t)), 6) for t in (499, 500, 750)]
      [1.0, 0.1, 0.01]
      >>> hf = lrjax.get("linear", learning_rate=1.0, num_warmup_steps=10,
      ...                num_training_steps=110)
      >>> [round(float(hf(t)), 6) for t in (5, 10, 60, 110)]
      [0.5, 1.0, 0.5, 0.0]
    """
    build, is_hf = _resolve(name, kwargs)
    kwargs = dict(kwargs)
    if is_hf and total_steps is not None:
        if kwargs.setdefault("num_training_steps", total_steps) != total_steps:
            raise ValueError(
                f"total_steps={total_steps!r} and num_training_steps="
                f"{kwargs['num_training_steps']!r} disagree; give one of them"
            )
    params = inspect.signature(build).parameters
    hidden = frozenset() if is_hf else frozenset({"total_steps"})
    accepted = [
        p for p in params if p not in hidden and params[p].kind is not params[p].VAR_KEYWORD
    ]
    required = [p for p in accepted if params[p].default is params[p].empty]
    unknown = sorted(set(kwargs) - set(accepted))
    missing = [p for p in required if p not in kwargs]
    if (unknown or missing) and name != "reduce_lr_on_plateau":
        raise ValueError(_arguments_message(name, is_hf, unknown, missing))
    total = kwargs.get("num_training_steps") if is_hf else total_steps
    for key, value in kwargs.items():
        if key not in (_HF_DURATION_ARGS if is_hf else _DURATION_ARGS) or value is None:
            continue
        if isinstance(value, list | tuple):
            kwargs[key] = [to_steps(v, total, f"each of {key}") for v in value]
        else:
            kwargs[key] = to_steps(value, total, key)
    if not is_hf and "total_steps" in params:
        kwargs["total_steps"] = total_steps
    return build(**kwargs)


def _arguments_message(name: str, is_hf: bool, unknown: list[str], missing: list[str]) -> str:
    problems = []
    if unknown:
        problems.append(f"unknown argument(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing argument(s) {', '.join(missing)}")
    forms = []
    if name in _HF_SCHEDULES:
        forms.append(f"Hugging Face's ({', '.join(_arguments(_HF_SCHEDULES[name][0]))})")
    if name in _BY_NAME:
        factory = _BY_NAME[name]
        forms.append(f"lrjax {factory.__name__}'s ({', '.join(_arguments(factory))})")
    chosen = "Hugging Face's" if is_hf else "lrjax's"
    return (
        f"get({name!r}) as {chosen} schedule: {'; '.join(problems)}. {name!r} accepts "
        + " or ".join(forms)
        + (
            "; HF's learning_rate / num_warmup_steps / num_training_steps select HF's form"
            if len(forms) == 2
            else ""
        )
    )


def names_table() -> str:
    """A Markdown table of every name :func:`get` accepts, its meaning and its arguments.

    ``docs/schedule_names.md`` holds this text (a test checks they agree); regenerate it with
    ``python -c "from lrjax import schedules as s; open('docs/schedule_names.md', 'w')
    .write(s.names_table())"``.

    Returns:
      The Markdown text, ending with a newline.

    Examples:
      >>> from lrjax import schedules
      >>> print(schedules.names_table().splitlines()[0])
      # Schedule names accepted by `lrjax.get`
    """

    def args(build, hide=frozenset()):
        return ", ".join(f"`{a}`" for a in _arguments(build, hide))

    rows = []
    for name, factory in _BY_NAME.items():
        rows.append((name, 1, "lrjax", f"`{factory.__name__}`", args(factory), ""))
    for name, (build, hf_function, built_with, note) in _HF_SCHEDULES.items():
        arguments = "" if name == "reduce_lr_on_plateau" else args(build)
        rows.append((name, 0, f"Hugging Face `{hf_function}`", f"`{built_with}`", arguments, note))
    lines = [
        "# Schedule names accepted by `lrjax.get`",
        "",
        "<!-- Generated by lrjax.schedules.names_table(); tests/schedules_test.py checks it. -->",
        "",
        "`lrjax.get(name, total_steps=None, **kwargs)` builds a schedule by name. Hugging Face "
        "names take HF's argument names and give HF's schedule (the LR after `t` calls of "
        "`scheduler.step()`). Where a name is both HF's and lrjax's, the arguments decide: "
        "`learning_rate`, `num_warmup_steps` or `num_training_steps` select HF's form, "
        "otherwise lrjax's factory. Durations may be steps (int) or fractions (float in "
        "[0, 1]) of `total_steps` (of `num_training_steps` for HF names, for which "
        "`total_steps` stands in when `num_training_steps` is not given). An unknown or "
        "missing argument is a `ValueError` listing the accepted ones.",
        "",
        "| Name | Meaning | Built with | Arguments | Notes |",
        "|---|---|---|---|---|",
    ]
    for name, _, meaning, built_with, arguments, note in sorted(rows):
        lines.append(f"| `{name}` | {meaning} | {built_with} | {arguments} | {note} |")
    return "\n".join(lines) + "\n"
