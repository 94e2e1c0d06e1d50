"""Recipes built from the pieces: warmup + linear or cosine decay, hard restarts, inverse
square root, warmup-stable-decay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import check_choice, check_float, check_magnitude
from lrjax.schedules._compose import _WARMUP_MODES, _ramp, join, lr_noise, warmup
from lrjax.schedules._cycles import _Cycles, _k_decay
from lrjax.schedules._decays import _cosine_weight, linear
from lrjax.schedules._steps import (
    _INT64_MAX,
    Schedule,
    _as_step,
    _check_flag,
    _check_steps,
    _check_values,
    _clamp_step,
    _f32,
    _locate,
    _until,
    to_steps,
)

# --------------------------------------------------------------------------------------------
# Transformer recipes and warmup-stable-decay.
# --------------------------------------------------------------------------------------------


def _warmup_and_decay_steps(
    warmup_steps, total_steps, names: tuple[str, str] = ("warmup_steps", "total_steps")
) -> tuple[int, int]:
    warmup_name, total_name = names
    total_steps = _check_steps(total_name, total_steps, 1)
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
    exponent: float = 1.0,
) -> Schedule:
    r"""Linear warmup to ``peak_value``, then cosine decay to ``end_value`` at ``total_steps``.

    With progress :math:`q = \mathrm{clip}((t - W) / (T - W), 0, 1)` after warmup:

    .. math::
        \eta_t = \eta_{end} + (\eta_{peak} - \eta_{end})
                 \left(\frac{1 + \cos(2\pi n q)}{2}\right)^{p}

    and a linear warmup from ``init_value`` before :math:`W`. :math:`n = 0.5` is a half cosine;
    :math:`p` = ``exponent`` is optax's (1 for the plain cosine).

    Matches Hugging Face ``get_cosine_schedule_with_warmup`` (``end_value=0``) and
    ``get_cosine_with_min_lr_schedule_with_warmup`` (``min_lr=end_value``) up to
    :math:`T`; past :math:`T` the progress is clipped (HF's cosine rises again).
    Matches optax ``warmup_cosine_decay_schedule(init_value, peak_value, W, T, end_value,
    exponent)`` (whose ``decay_steps`` is the total :math:`T`); unlike optax's, ``peak_value``
    never reaches a Python ``if``, so it can be vmapped.

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_steps: :math:`W`, steps or a fraction of ``total_steps``; ``0 <= W < T``.
      total_steps: :math:`T \ge 1`.
      end_value: :math:`\eta_{end} \ge 0`, the floor (traceable; checked unless traced).
      init_value: start of the warmup, ``>= 0`` (traceable; checked unless traced).
      num_cycles: :math:`n > 0`, number of cosine periods after warmup (traceable; checked
        unless traced).
      exponent: :math:`p > 0`, the power of the cosine factor, optax's ``exponent``
        (traceable; checked unless traced).

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
    check_magnitude("exponent", exponent, 0, open_min=True)
    d = float(decay_steps)

    def decay(step):
        # (1 + cos(2 pi n q)) / 2 == sin^2(pi/2 (1 - 2 n q)) with 1 - q = left / D exact, so
        # no digits cancel (for n = 1/2 the argument is left / D itself).
        two_n = 2.0 * _f32(num_cycles)
        factor = _cosine_weight(((1.0 - two_n) * d + two_n * _until(step, decay_steps)) / d)
        return _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * factor ** _f32(exponent)

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
        :math:`(n s) \bmod D` is exact integer arithmetic for integer steps when :math:`n D`
        fits the step's integer type (Python ints always, int64 on the host), and float32
        (float64 on the host) beyond.
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
    num_cycles = _check_steps("num_cycles", num_cycles, 1)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    d = float(decay_steps)

    def decay(step):
        # Flat from D on, so clamp there; then (n s) mod D on integers is exact, where HF's
        # (n q) % 1 would round, and so would n s in float32 from 2**24 on.
        phase = _phase(_clamp_step(step, decay_steps), num_cycles, decay_steps)
        value = _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * _cosine_weight(
            (d - phase) / d
        )
        return jnp.where(_until(step, decay_steps) > 0, value, _f32(end_value))

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
    warmup_steps = _check_steps("warmup_steps", warmup_steps, 0)
    if timescale is None:
        timescale = warmup_steps or 10_000
    timescale = _check_steps("timescale", timescale, 1)
    _check_values(peak_value=peak_value, init_value=init_value)
    tau = float(timescale)

    def decay(step):
        return _f32(peak_value) * jnp.sqrt(tau / (_as_step(step) + tau))

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
    total_steps = _check_steps("total_steps", total_steps, 1)
    warmup_steps = to_steps(warmup_steps, total_steps, "warmup_steps")
    decay_steps = to_steps(decay_steps, total_steps, "decay_steps")
    if decay_steps < 1 or warmup_steps + decay_steps > total_steps:
        raise ValueError(
            f"decay_steps must be in [1, total_steps - warmup_steps] = "
            f"[1, {total_steps - warmup_steps}], got {decay_steps}"
        )
    return _wsd(
        peak_value,
        total_steps,
        warmup_steps,
        decay_steps,
        decay_type,
        end_value,
        init_value,
        warmup_type,
    )


def _wsd(
    peak_value,
    total_steps,
    warmup_steps,
    decay_steps,
    decay_type,
    end_value,
    init_value,
    warmup_type,
) -> Schedule:
    """WSD without the check ``W + D <= T``: Hugging Face's ``get_wsd_schedule`` lets the
    cooldown start (at ``T - D``) before the warmup ends, then the LR drops from the peak
    to the partly decayed value at ``W``."""
    decay_type = check_choice("decay_type", decay_type, tuple(_COOLDOWN_SHAPES))
    warmup_type = check_choice("warmup_type", warmup_type, _WARMUP_MODES)
    _check_values(peak_value=peak_value, end_value=end_value, init_value=init_value)
    shape = _COOLDOWN_SHAPES[decay_type]
    stable = max(total_steps - warmup_steps, 0)  # steps from the end of the warmup to T

    def stable_then_decay(step):
        remaining = jnp.minimum(_until(step, stable) / float(decay_steps), 1.0)
        return _f32(end_value) + (_f32(peak_value) - _f32(end_value)) * shape(remaining)

    if warmup_steps == 0 or warmup_steps + decay_steps <= total_steps:
        return warmup(stable_then_decay, warmup_steps, init_value, warmup_type)
    ramp = _ramp(init_value, lambda: peak_value, warmup_steps, warmup_type)
    return join([ramp, stable_then_decay], [warmup_steps])


def warmup_cosine_fraction(peak_value: float, warmup_fraction: float, total_steps: int) -> Schedule:
    r"""Linear warmup over a *traceable* fraction of the run, then cosine decay to 0.

    .. math::
        \eta_t = \eta_{peak} \begin{cases} t / \max(W, 1) & t < W \\
        \tfrac12 \left(1 + \cos \pi\, \mathrm{clip}\!\left(
            \tfrac{\min(t, T) - W}{\max(T - W, 1)}, 0, 1\right)\right) & t \ge W
        \end{cases}, \qquad W = f\,T

    :func:`warmup_cosine_decay` takes the warmup length as a static step count; here the
    fraction :math:`f` may be traced, so a search over the warmup fraction is one sweep. The
    warmup ends at the (possibly fractional) step :math:`W`.

    Args:
      peak_value: :math:`\eta_{peak} \ge 0` (traceable; checked unless traced).
      warmup_fraction: :math:`f \in [0, 1)` (traceable; checked unless traced).
      total_steps: :math:`T \ge 1`.

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> s = lrjax.schedules.warmup_cosine_fraction(1.0, 0.1, 100)
      >>> [round(float(s(t)), 6) for t in (0, 5, 10, 55, 100)]
      [0.0, 0.5, 1.0, 0.5, 0.0]

    References:
      Goyal et al., Accurate, Large Minibatch SGD, arXiv:1706.02677, 2017 (warmup); Loshchilov
      & Hutter, SGDR, arXiv:1608.03983, 2017 (cosine).
    """
    total_steps = _check_steps("total_steps", total_steps, 1)
    check_magnitude("peak_value", peak_value, 0)
    check_magnitude("warmup_fraction", warmup_fraction, 0, 1, open_max=True)
    T = float(total_steps)

    def schedule(step):
        t = jnp.minimum(_as_step(step), T)
        w = _f32(warmup_fraction) * T
        ramp = t / jnp.maximum(w, 1.0)
        progress = (t - w) / jnp.maximum(T - w, 1.0)
        decay = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(progress, 0.0, 1.0)))
        return _f32(peak_value) * jnp.where(t < w, ramp, decay)

    return schedule


def _phase(s: Any, n: int, d: int) -> jax.Array:
    """``(n s) mod d`` as float32 for a clamped step ``s`` of any kind, exact for integers
    whose type holds ``n d``."""
    if isinstance(s, int):
        return _f32((n * s) % d)
    if isinstance(s, np.ndarray):
        if n * d <= _INT64_MAX:
            return _f32((n * s) % d)
        return _f32(np.mod(n * s.astype(np.float64), float(d)))
    if jnp.issubdtype(s.dtype, jnp.integer) and n * d <= int(jnp.iinfo(s.dtype).max):
        return jnp.mod(n * s, d).astype(jnp.float32)
    return jnp.mod(float(n) * s.astype(jnp.float32), float(d))


def timm_cosine(
    learning_rate: float,
    t_initial: int,
    lr_min: float = 0.0,
    cycle_mul: float = 1.0,
    cycle_decay: float = 1.0,
    cycle_limit: int | None = 1,
    warmup_t: int = 0,
    warmup_lr_init: float = 0.0,
    warmup_prefix: bool = False,
    noise_range_t: int | Sequence[int] | None = None,
    noise_pct: float = 0.67,
    noise_std: float = 1.0,
    noise_seed: int = 42,
    k_decay: float = 1.0,
) -> Schedule:
    r"""timm's ``CosineLRScheduler``: cosine cycles with restarts, k-decay, warmup and noise.

    With :math:`W` = ``warmup_t`` and :math:`u = t - W` if ``warmup_prefix`` else :math:`t`,
    cycle :math:`i` of length :math:`L_i = P m^i` (:math:`P` = ``t_initial``, :math:`m` =
    ``cycle_mul``) holds :math:`u`, :math:`q` is the elapsed fraction of it (as in
    :func:`sgdr`) and :math:`\gamma` = ``cycle_decay``, :math:`k` = ``k_decay``,
    :math:`C` = ``cycle_limit``:

    .. math::
        \eta_t = \begin{cases}
          \eta_{w} + (\eta - \eta_{w})\, t / W & t < W \\
          \eta_{min} + (\gamma^i \eta - \eta_{min}) \frac{1 + \cos(\pi q^{k})}{2}
            & t \ge W,\ i < C \\
          \eta_{min} & t \ge W,\ i \ge C
        \end{cases}

    times :math:`1 + n_t` inside ``noise_range_t`` (see :func:`lr_noise`), with
    :math:`\eta` = ``learning_rate``, :math:`\eta_w` = ``warmup_lr_init``, :math:`\eta_{min}` =
    ``lr_min``. Without ``warmup_prefix`` the warmup replaces the first :math:`W` steps of the
    cosine, as in timm; with it the cosine starts after the warmup.

    Matches timm ``CosineLRScheduler`` (arguments of the same names; the step is timm's ``t``,
    the epoch or update count passed to ``step``/``step_update``), with two deliberate
    differences: restart steps are exact (timm locates the cycle with a float logarithm, which
    can put a restart a step late), and the noise is drawn from JAX's generator with
    ``noise_std`` applied (see :func:`lr_noise`).

    Args:
      learning_rate: :math:`\eta \ge 0`, timm's base LR (traceable; checked unless traced).
      t_initial: :math:`P \ge 1`, the length of the first cycle.
      lr_min: :math:`\eta_{min} \ge 0` (traceable; checked unless traced).
      cycle_mul: :math:`m \ge 1`, the growth of the cycle length (static; see :func:`sgdr`).
      cycle_decay: :math:`\gamma > 0`, the decay of the peak per cycle (traceable; checked
        unless traced).
      cycle_limit: :math:`C \ge 1` cycles (timm's default 1: one cosine, then
        :math:`\eta_{min}`), or ``None`` for no limit.
      warmup_t: :math:`W \ge 0` warmup steps.
      warmup_lr_init: :math:`\eta_w \ge 0` (traceable; checked unless traced).
      warmup_prefix: ``True`` to start the cosine after the warmup.
      noise_range_t: where noise applies: a step, a pair ``(start, stop)``, or ``None``.
      noise_pct: the noise bound, ``> 0`` (traceable; checked unless traced).
      noise_std: the noise's standard deviation, ``> 0`` (traceable; checked unless traced).
      noise_seed: the noise seed in ``[0, 2**32)`` (traceable).
      k_decay: :math:`k > 0` (traceable; checked unless traced).

    Returns:
      The schedule.

    Examples:
      >>> import lrjax
      >>> timm = lrjax.schedules.timm_cosine(1.0, t_initial=100, lr_min=0.1, warmup_t=10)
      >>> [round(float(timm(t)), 6) for t in (0, 5, 10, 50, 100, 200)]
      [0.0, 0.5, 0.977975, 0.55, 0.1, 0.1]

    References:
      timm ``timm.scheduler.cosine_lr.CosineLRScheduler``; Loshchilov & Hutter, SGDR,
      arXiv:1608.03983, 2017; Zhang & Li, k-decay, arXiv:2004.05909, 2020.
    """
    t_initial = _check_steps("t_initial", t_initial, 1)
    cycle_mul = check_float("cycle_mul", cycle_mul, 1)
    if cycle_limit is not None:
        cycle_limit = _check_steps("cycle_limit", cycle_limit, 1)
    warmup_t = _check_steps("warmup_t", warmup_t, 0)
    warmup_prefix = _check_flag("warmup_prefix", warmup_prefix)
    _check_values(learning_rate=learning_rate, lr_min=lr_min, warmup_lr_init=warmup_lr_init)
    check_magnitude("cycle_decay", cycle_decay, 0, open_min=True)
    check_magnitude("k_decay", k_decay, 0, open_min=True)
    cycles = _Cycles(t_initial, cycle_mul)

    def cosine(step):
        i, remaining = cycles(step)
        top, floor = _f32(learning_rate) * _f32(cycle_decay) ** i, _f32(lr_min)
        lr = floor + (top - floor) * _cosine_weight(_k_decay(remaining, k_decay))
        return lr if cycle_limit is None else jnp.where(i < cycle_limit, lr, floor)

    schedule = cosine
    if warmup_t > 0:
        ramp = _ramp(warmup_lr_init, lambda: learning_rate, warmup_t, "linear")
        if warmup_prefix:
            schedule = join([ramp, cosine], [warmup_t])
        else:

            def schedule(step):
                warming, _ = _locate(step, (0, warmup_t))
                return jnp.where(warming == 0, ramp(step), cosine(step))

    return lr_noise(schedule, noise_range_t, noise_pct, noise_std, noise_seed)
