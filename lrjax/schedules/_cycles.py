"""Cycles and restarts: SGDR, cyclical learning rates, one-cycle (LR and momentum) and
snapshot ensembles.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp

from lrjax._checks import (
    check_choice,
    check_float,
    check_int,
    check_magnitude,
)
from lrjax.schedules._decays import _cosine_weight
from lrjax.schedules._steps import (
    Schedule,
    _as_step,
    _divmod_step,
    _f32,
)

# --------------------------------------------------------------------------------------------
# Cosine with warm restarts (SGDR).
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
# Cyclical learning rates.
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
# One-cycle.
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
# Snapshot ensembles.
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
