"""Cycles and restarts: SGDR, cyclical learning rates, one-cycle (LR and momentum) and
snapshot ensembles.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import (
    check_choice,
    check_float,
    check_magnitude,
)
from lrjax.schedules._decays import _cosine_weight
from lrjax.schedules._steps import (
    _INT64_MAX,
    Schedule,
    _as_step,
    _check_flag,
    _check_steps,
    _divmod_step,
    _f32,
    _locate,
)

# --------------------------------------------------------------------------------------------
# Cosine with warm restarts (SGDR).
# --------------------------------------------------------------------------------------------


_MAX_CYCLES = 4096


class _Cycles:
    r"""Where SGDR's cycles start and how much of each is left, exact for integer steps.

    Cycle :math:`i` lasts :math:`L_i = P m^i` steps and starts at
    :math:`s_i = P (m^i - 1) / (m - 1)` (:math:`i P` for :math:`m = 1`), with :math:`m` the
    exact binary value of ``period_mult``. An integer step :math:`t` is in cycle :math:`i` when
    :math:`\lceil s_i \rceil \le t < \lceil s_{i+1} \rceil`. For :math:`m = 1` this is integer
    division; otherwise the integer restart steps :math:`\lceil s_i \rceil` below 2**63 are
    computed once, exactly (in integers scaled by the power of two of :math:`m`'s
    denominator), and located by binary search, so no restart is ever off by a step, under jit
    or not, at any int32 or int64 step (a float32 logarithm misses restarts: with
    :math:`m = 4`, the peak at step 3410 became the floor).
    """

    def __init__(self, first_period: int, period_mult: float):
        self.first_period, self.period_mult = first_period, period_mult
        if period_mult == 1.0:
            return
        num, den = float(period_mult).as_integer_ratio()  # den is a power of two
        self._num, self._shift = num, den.bit_length() - 1
        # Exact state of the walk: s_i = start / 2**(shift i), L_i = length / 2**(shift i).
        self._i, self._start, self._length = 0, 0, first_period
        self.starts: list[int] = []  # ceil(s_i)
        self.lengths: list[float] = []  # L_i
        self.left: list[float] = []  # s_{i+1} - ceil(s_i): what cycle i has left at its start
        self._extend(_INT64_MAX, _MAX_CYCLES + 1)
        if len(self.starts) > _MAX_CYCLES:
            raise ValueError(
                f"period_mult={period_mult!r} with first_period={first_period} starts more "
                f"than {_MAX_CYCLES} cycles before step 2**63, the most whose restart steps are "
                "tabulated (exactly): use period_mult=1 (equal cycles) or a larger period_mult "
                "or first_period"
            )
        self._tables()

    def _extend(self, limit: int, most: int | None = None) -> None:
        """Walks the cycles until one starts beyond ``limit`` (or ``most`` are tabulated)."""
        while not self.starts or self.starts[-1] <= limit:
            scale = self._shift * self._i
            start = -((-self._start) >> scale)  # ceil(s_i)
            end = self._start + self._length  # s_{i+1} in the same scale
            self.starts.append(start)
            self.lengths.append(self._length / (1 << scale))
            self.left.append((end - (start << scale)) / (1 << scale))
            self._start = end << self._shift
            self._length *= self._num
            self._i += 1
            if most is not None and len(self.starts) >= most:
                return

    def _tables(self) -> None:
        self._lengths = np.asarray(self.lengths, np.float32)
        self._left = np.asarray(self.left, np.float32)

    def __call__(self, step: Any) -> tuple[jax.Array, jax.Array]:
        """``(i, r)``: the cycle of the step (float32) and the fraction of it still to go."""
        if self.period_mult == 1.0:
            i, x = _divmod_step(step, self.first_period)
            return i, (float(self.first_period) - x) / float(self.first_period)
        if isinstance(step, int) and step >= self.starts[-1]:  # beyond int64: extend the walk
            self._extend(step)
            self._tables()
        i, x = _locate(step, self.starts)
        left, length = jnp.asarray(self._left)[i], jnp.asarray(self._lengths)[i]
        return i.astype(jnp.float32), (left - _f32(x)) / length


def _k_decay(remaining: jax.Array, k: Any) -> jax.Array:
    """timm's k-decay: the elapsed fraction ``q = 1 - r`` raised to ``k``, as ``1 - q**k``.

    Computed as ``-expm1(k log1p(-r))``, which keeps relative precision where ``r`` is tiny
    (the end of a cycle); ``k = 1`` keeps ``r`` itself, bit for bit.
    """
    k = _f32(k)
    return jnp.where(k == 1.0, remaining, -jnp.expm1(k * jnp.log1p(-remaining)))


def sgdr(
    init_value: float,
    first_period: int,
    period_mult: float = 1.0,
    peak_decay: float = 1.0,
    end_value: float = 0.0,
    cycle_limit: int | None = None,
    k_decay: float = 1.0,
) -> Schedule:
    r"""Cosine annealing with warm restarts (SGDR).

    Cycle :math:`i = 0, 1, \dots` starts at :math:`s_i = P (m^i - 1) / (m - 1)` (:math:`i P`
    when :math:`m = 1`) and lasts :math:`L_i = P m^i` steps; with :math:`q = (t - s_i) / L_i`
    the elapsed fraction of it:

    .. math::
        \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\, d^{\,i}\,
                 \frac{1 + \cos(\pi q^{k})}{2} \quad (i < C), \qquad
        \eta_t = \eta_{min} \quad (i \ge C)

    with :math:`P` = ``first_period``, :math:`m` = ``period_mult``, :math:`d` =
    ``peak_decay``, :math:`C` = ``cycle_limit`` (unlimited by default) and :math:`k` =
    ``k_decay``. An integer step :math:`t` restarts exactly at :math:`\lceil s_i \rceil`, for
    integer and fractional :math:`m`, at any step (see :class:`_Cycles`).

    Matches Keras ``CosineDecayRestarts(first_decay_steps=P, t_mul=m, m_mul=d,
    alpha=end_value / init_value)`` for any :math:`m \ge 1`, and PyTorch
    ``CosineAnnealingWarmRestarts(T_0=P, T_mult=m, eta_min)`` for integer :math:`m` and
    :math:`d = 1`. ``cycle_limit`` and ``k_decay`` are timm ``CosineLRScheduler``'s (whose
    decayed peak is :math:`\eta_{min} + (d^i \eta_0 - \eta_{min})` instead; see
    :func:`timm_cosine` for timm's exact form).

    Args:
      init_value: :math:`\eta_0 \ge 0` (traceable; checked unless traced).
      first_period: :math:`P`, length of the first cycle, ``>= 1``.
      period_mult: :math:`m \ge 1`, growth factor of the cycle length (static, finite; may be
        fractional, with at most 4096 cycles before step 2**63).
      peak_decay: :math:`d > 0`, factor applied to the peak at each restart (traceable; checked
        unless traced).
      end_value: the floor :math:`\eta_{min} \ge 0` (traceable; checked unless traced).
      cycle_limit: :math:`C \ge 1`, the number of cycles, after which the LR stays at
        ``end_value``; ``None`` for no limit.
      k_decay: :math:`k > 0`, timm's k-decay of the cosine's phase (traceable; checked unless
        traced); 1 is the plain cosine.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.sgdr(1.0, first_period=10, period_mult=2.0, peak_decay=0.5)
      >>> [round(float(schedule(t)), 6) for t in (0, 5, 10, 20, 30)]
      [1.0, 0.5, 0.5, 0.25, 0.25]
      >>> once = lrjax.sgdr(1.0, first_period=10, cycle_limit=1, end_value=0.1)
      >>> [round(float(once(t)), 6) for t in (0, 9, 10, 20)]
      [1.0, 0.122025, 0.1, 0.1]

    References:
      Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts,
      arXiv:1608.03983, 2017; Zhang & Li, k-decay: A New Method For Learning Rate Schedule,
      arXiv:2004.05909, 2020.
    """
    first_period = _check_steps("first_period", first_period, 1)
    m = check_float("period_mult", period_mult, 1)
    if cycle_limit is not None:
        cycle_limit = _check_steps("cycle_limit", cycle_limit, 1)
    check_magnitude("init_value", init_value, 0)
    check_magnitude("peak_decay", peak_decay, 0, open_min=True)
    check_magnitude("end_value", end_value, 0)
    check_magnitude("k_decay", k_decay, 0, open_min=True)
    cycles = _Cycles(first_period, m)

    def schedule(step):
        i, remaining = cycles(step)
        peak = (_f32(init_value) - _f32(end_value)) * _f32(peak_decay) ** i
        lr = _f32(end_value) + peak * _cosine_weight(_k_decay(remaining, k_decay))
        return lr if cycle_limit is None else jnp.where(i < cycle_limit, lr, _f32(end_value))

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
    up = _check_steps("step_size_up", step_size_up, 1)
    down = up if step_size_down is None else _check_steps("step_size_down", step_size_down, 1)
    mode = check_choice("mode", mode, _CYCLIC_MODES)
    check_magnitude("base_value", base_value, 0)
    check_magnitude("max_value", max_value, 0)
    check_magnitude("gamma", gamma, 0, open_min=True)
    length = up + down

    def schedule(step):
        completed, x = _divmod_step(step, length)  # exact for integer steps, unlike 1 + t/c - k
        height = jnp.where(x <= float(up), x / float(up), (float(length) - x) / float(down))
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
    total_steps = _check_steps("total_steps", total_steps, 2)
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
    three_phase = _check_flag("three_phase", three_phase)
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
    three_phase = _check_flag("three_phase", three_phase)
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
    total_steps = _check_steps("total_steps", total_steps, 1)
    num_cycles = _check_steps("num_cycles", num_cycles, 1)
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
        return _f32(init_value) * _cosine_weight((float(length) - x) / float(length))

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
