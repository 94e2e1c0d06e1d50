"""Decays: constant, linear, step and multi-step, piecewise constant, exponential,
inverse-time, scikit-learn's ``invscaling`` and ``optimal``, polynomial, cosine and tanh.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import (
    check_magnitude,
    is_traced,
)
from lrjax.schedules._steps import (
    Schedule,
    _as_step,
    _check_boundaries,
    _check_flag,
    _check_steps,
    _check_values,
    _divmod_step,
    _f32,
    _locate,
    _since,
    _until,
)

# --------------------------------------------------------------------------------------------
# Constant and linear.
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
    transition_steps = _check_steps("transition_steps", transition_steps, 1)
    transition_begin = _check_steps("transition_begin", transition_begin, 0)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)
    n = float(transition_steps)

    def schedule(step):
        done = jnp.minimum(_since(step, transition_begin), n)
        start, end = _f32(init_value), _f32(end_value)
        # Interpolate from the nearer end, so values near either end (such as a decay's last,
        # tiny LRs) keep full relative precision instead of cancelling in 1 - t/n.
        from_start = start + (end - start) * (done / n)
        from_end = end + (start - end) * ((n - done) / n)
        return jnp.where(2 * done < n, from_start, from_end)

    return schedule


# --------------------------------------------------------------------------------------------
# Step decay, multi-step decay, piecewise constant.
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
    step_size = _check_steps("step_size", step_size, 1)
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

    starts = (0, *milestones)

    def schedule(step):
        passed, _ = _locate(step, starts)  # milestones reached, counted exactly
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

    starts = (0, *(b + 1 for b in boundaries))  # t > b  <=>  t >= b + 1 for integer steps

    def schedule(step):
        passed, _ = _locate(step, starts)
        return values[passed]

    return schedule


# --------------------------------------------------------------------------------------------
# Exponential, inverse-time and scikit-learn's decays.
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
    decay_steps = _check_steps("decay_steps", decay_steps, 1)
    transition_begin = _check_steps("transition_begin", transition_begin, 0)
    staircase = _check_flag("staircase", staircase)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("decay_rate", decay_rate, 0, open_min=True)
    if end_value is not None:
        check_magnitude("end_value", end_value, 0)

    def schedule(step):
        if staircase:
            p, _ = _divmod_step(step, decay_steps, offset=transition_begin)
        else:
            p = _since(step, transition_begin) / float(decay_steps)
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
    decay_steps = _check_steps("decay_steps", decay_steps, 1)
    staircase = _check_flag("staircase", staircase)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("decay_rate", decay_rate, 0)

    def schedule(step):
        p = _divmod_step(step, decay_steps)[0] if staircase else _as_step(step) / float(decay_steps)
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
# Polynomial and cosine decay.
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
    decay_steps = _check_steps("decay_steps", decay_steps, 1)
    cycle = _check_flag("cycle", cycle)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)
    check_magnitude("power", power, 0, open_min=True)
    s = float(decay_steps)

    def schedule(step):
        if cycle:
            # t = k s + x; the span is s ceil(t / s) (s at t = 0), and span - t is the exact
            # integer s - x (0 at the end of a period), so no digits cancel at giant steps.
            k, x = _divmod_step(step, decay_steps)
            periods = jnp.where(x > 0, k + 1.0, jnp.maximum(k, 1.0))
            left = jnp.where(x > 0, s - x, jnp.where(k == 0, s, 0.0))
            remaining = left / (periods * s)
        else:
            remaining = _until(step, decay_steps) / s
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


def cosine_decay(
    init_value: float, decay_steps: int, end_value: float = 0.0, exponent: float = 1.0
) -> Schedule:
    r"""Cosine annealing from ``init_value`` to a floor ``end_value``.

    .. math::
        \eta_t = \eta_{min} + (\eta_0 - \eta_{min})
                 \left(\frac{1 + \cos(\pi \min(t, T) / T)}{2}\right)^{p}

    with :math:`p` = ``exponent`` (1 for the plain cosine).

    Matches PyTorch ``CosineAnnealingLR(T_max=T, eta_min)`` (closed form) on
    :math:`[0, T]`; past :math:`T` PyTorch's cosine rises again, while this schedule stays at
    ``end_value`` as Keras and optax do. Keras ``CosineDecay(alpha)`` is
    ``end_value = alpha * init_value``; optax ``cosine_decay_schedule(init_value, decay_steps,
    alpha, exponent)`` is ``end_value = alpha * init_value`` with the same ``exponent``.

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      decay_steps: :math:`T`, ``>= 1``.
      end_value: the floor :math:`\eta_{min} \ge 0` (traceable; checked unless traced).
      exponent: :math:`p > 0`, the power of the cosine factor, optax's ``exponent``
        (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.cosine_decay(1.0, decay_steps=100, end_value=0.1)
      >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 150)]
      [1.0, 0.55, 0.1, 0.1]
      >>> squared = lrjax.cosine_decay(1.0, decay_steps=100, exponent=2.0)
      >>> round(float(squared(50)), 6)
      0.25

    References:
      Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts,
      arXiv:1608.03983, 2017; optax ``cosine_decay_schedule``.
    """
    decay_steps = _check_steps("decay_steps", decay_steps, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("end_value", end_value, 0)
    check_magnitude("exponent", exponent, 0, open_min=True)

    def schedule(step):
        weight = _cosine_weight(_until(step, decay_steps) / float(decay_steps)) ** _f32(exponent)
        return _f32(end_value) + (_f32(init_value) - _f32(end_value)) * weight

    return schedule


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
    total_steps = _check_steps("total_steps", total_steps, 1)
    _check_values(init_value=init_value, end_value=end_value)
    check_magnitude("lower_bound", lower_bound)
    check_magnitude("upper_bound", upper_bound)
    T = float(total_steps)

    def schedule(step):
        left = _until(step, total_steps)
        arg = (_f32(lower_bound) * left + _f32(upper_bound) * (T - left)) / T
        # (1 - tanh(x)) / 2 == sigmoid(-2x), without cancellation as tanh(x) nears 1.
        value = _f32(end_value) + (_f32(init_value) - _f32(end_value)) * jax.nn.sigmoid(-2.0 * arg)
        return jnp.where(left > 0, value, _f32(end_value))

    return schedule
