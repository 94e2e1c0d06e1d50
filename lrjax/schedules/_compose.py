"""Composition: pieces joined at boundaries, scaled, clipped, repeated, warmed up, handed
over to SWA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax._checks import (
    check_choice,
    check_int,
    check_magnitude,
    is_traced,
)
from lrjax.schedules._decays import _cosine_weight
from lrjax.schedules._steps import (
    Schedule,
    _as_step,
    _check_boundaries,
    _check_ordered,
    _check_schedule,
    _check_steps,
    _f32,
    _locate,
    _offset_step,
    _split_step,
)

# --------------------------------------------------------------------------------------------
# Join, scale, clip, repeat.
# --------------------------------------------------------------------------------------------


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    r"""Runs ``schedules[i]`` between ``boundaries[i-1]`` and ``boundaries[i]``, validated.

    .. math::
        \eta_t = f_i(t - b_{i-1}) \quad\text{for}\quad b_{i-1} \le t < b_i
        \qquad (b_{-1} = 0,\ b_n = \infty)

    Each piece sees the steps since its own start. This is ``optax.join_schedules`` after
    checking what it silently accepts (``len(boundaries) == len(schedules) - 1``, strictly
    increasing boundaries ``>= 1``, callable pieces), with the comparison and the subtraction
    exact for integer steps at any size (optax's overflow beyond int32) and every piece's
    value as float32.

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
    schedules = _check_schedules("schedules", schedules)
    boundaries = _check_boundaries("boundaries", boundaries, 1)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"boundaries must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got {len(boundaries)}"
        )
    starts = (0, *boundaries)

    def joined(step):
        piece, _ = _locate(step, starts)
        lr = _f32(schedules[0](_offset_step(step, 0)))
        for k in range(1, len(schedules)):
            lr = jnp.where(piece >= k, _f32(schedules[k](_offset_step(step, starts[k]))), lr)
        return lr

    return joined


def _check_schedules(name: str, schedules: Any) -> tuple[Schedule, ...]:
    """A non-empty list of schedules."""
    if callable(schedules) or not isinstance(schedules, Sequence) or isinstance(schedules, str):
        raise ValueError(f"{name} must be a list of schedules, got {schedules!r}")
    if not schedules:
        raise ValueError(f"{name} must hold at least one schedule, got none")
    return tuple(_check_schedule(f"{name}[{i}]", s) for i, s in enumerate(schedules))


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
    schedule = _check_schedule("schedule", schedule)
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
    schedule = _check_schedule("schedule", schedule)
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
    schedule = _check_schedule("schedule", schedule)
    period = _check_steps("period", period, 1)

    def repeated(step):
        # The position stays an integer of the step's own kind, so the inner schedule sees an
        # exact step; negative steps count as 0 (Python's % would wrap them into the period).
        return schedule(_split_step(step, period)[1])

    return repeated


# --------------------------------------------------------------------------------------------
# Warmup and the hand-over to SWA.
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
    schedule = _check_schedule("schedule", schedule)
    warmup_steps = _check_steps("warmup_steps", warmup_steps, 0)
    mode = check_choice("mode", mode, _WARMUP_MODES)
    # The exponential ramp divides by init_value.
    check_magnitude("init_value", init_value, 0, open_min=mode == "exponential")
    if warmup_steps == 0:
        return schedule
    ramp = _ramp(init_value, lambda: schedule(0), warmup_steps, mode)
    return join([ramp, schedule], [warmup_steps])


def _ramp(init_value: Any, peak: Callable[[], Any], warmup_steps: int, mode: str) -> Schedule:
    """The warmup's ramp from ``init_value`` to ``peak()`` over ``warmup_steps`` (>= 1)."""

    def warm(step):
        # Only used below W; the cap keeps the unused branch of join's where finite.
        q = jnp.minimum(_as_step(step) / float(warmup_steps), 1.0)
        start, top = _f32(init_value), _f32(peak())
        if mode == "linear":
            return start + (top - start) * q
        if mode == "cosine":
            return start + (top - start) * _cosine_weight(q)
        if mode == "1-sqrt":
            # 1 - sqrt(1 - q) == q / (1 + sqrt(1 - q)), which does not cancel for small q.
            return start + (top - start) * q / (1.0 + jnp.sqrt(1.0 - q))
        return start * (top / start) ** q

    return warm


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
    schedule = _check_schedule("schedule", schedule)
    swa_start = _check_steps("swa_start", swa_start, 0)
    anneal_steps = _check_steps("anneal_steps", anneal_steps, 0)
    anneal = check_choice("anneal", anneal, _SWA_ANNEAL)
    check_magnitude("swa_lr", swa_lr, 0)

    def swa_part(step):
        q = jnp.minimum(_as_step(step) / float(max(anneal_steps, 1)), 1.0)
        if anneal_steps == 0:
            q = jnp.ones_like(q)
        alpha = _cosine_weight(q) if anneal == "cos" else q
        # Weighted sum rather than start + (swa - start) * alpha: exact at both ends.
        return schedule(swa_start) * (1.0 - alpha) + _f32(swa_lr) * alpha

    if swa_start == 0:
        return swa_part
    return join([schedule, swa_part], [swa_start])


def schedule_family_switch(index: Any, schedules: Sequence[Schedule]) -> Schedule:
    r"""Selects one of several schedules by an integer that may differ between members.

    .. math:: \eta_t = f_{i}(t), \qquad i = \text{index}

    evaluated with ``jax.lax.switch``, so a comparison of cosine vs step vs one-cycle vs WSD runs
    as members of one program. Under ``vmap`` with per-member indices ``lax.switch`` evaluates
    every branch and selects, which is cheap for scalar schedules.

    Args:
      index: integer family index in ``[0, len(schedules))``; traced (vmappable). A concrete
        index out of range raises ``ValueError``; :func:`lrjax.sweep.train` checks every
        member's index before compiling.
      schedules: the candidate ``optax.Schedule`` closures (typically built from the member's
        traced hyperparameters).

    Returns:
      An ``optax.Schedule``.

    Examples:
      >>> import optax
      >>> from lrjax.schedules import schedule_family_switch
      >>> s = schedule_family_switch(1, [optax.constant_schedule(1.0),
      ...                                optax.linear_schedule(1.0, 0.0, 10)])
      >>> float(s(5))
      0.5

    References:
      ``jax.lax.switch``; used by lrjax's schedule comparison (one program for all families).
    """
    schedules = _check_schedules("schedules", schedules)
    if not is_traced(index):
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
        if isinstance(step, jax.Array):
            return jax.lax.switch(index, branches, step)
        # A host step (a Python int may exceed int32) goes to every branch as it is.
        return jnp.stack([branch(step) for branch in branches])[index]

    return schedule


def multiply(*schedules: Schedule) -> Schedule:
    r"""The product of schedules: :math:`\eta_t = \prod_i f_i(t)`.

    This is PyTorch's ``ChainedScheduler``: chained on one optimizer, PyTorch's multiplicative
    schedulers (``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``ConstantLR``, ``LinearLR``,
    ``MultiplicativeLR``) each multiply the LR by their factor every step, so after :math:`t`
    steps the LR is the base LR :math:`\eta` times the product of their closed-form factors.
    Give the first schedule the base LR and the others as factors (initial value 1):
    ``ChainedScheduler([ExponentialLR(opt, 0.9), StepLR(opt, 3, 0.1)])`` with ``lr=0.05`` is
    ``multiply(exponential_decay(0.05, 0.9, 1), step_decay(1.0, 3, 0.1))``. For
    ``CosineAnnealingLR`` in a chain, PyTorch's own compound tests take the product of the
    closed forms as the target, which is what this gives. Every factor is evaluated and cast
    to float32.

    Args:
      *schedules: the schedules :math:`f_i` (at least one).

    Returns:
      The product schedule.

    Examples:
      >>> import lrjax
      >>> lr = lrjax.schedules.multiply(lrjax.exponential_decay(0.05, 0.9, 1),
      ...                               lrjax.step_decay(1.0, step_size=3, gamma=0.1))
      >>> [round(float(lr(t)), 8) for t in (0, 2, 3, 6)]
      [0.05, 0.0405, 0.003645, 0.00026572]

    References:
      PyTorch ``torch.optim.lr_scheduler.ChainedScheduler`` (and its compound-scheduler tests).
    """
    if not schedules:
        raise ValueError("multiply needs at least one schedule, got none")
    schedules = tuple(_check_schedule(f"schedules[{i}]", s) for i, s in enumerate(schedules))

    def product(step):
        lr = _f32(schedules[0](step))
        for schedule in schedules[1:]:
            lr = lr * _f32(schedule(step))
        return lr

    return product


def _noise_range(noise_range_t: Any) -> tuple[int, int | None]:
    """``(start, stop)`` of timm's ``noise_range_t``: a step ``t0`` or a pair ``(lo, hi)``."""
    if isinstance(noise_range_t, list | tuple):
        if len(noise_range_t) != 2:
            raise ValueError(
                f"noise_range_t must be a step or a pair (start, stop), got {noise_range_t!r}"
            )
        start = _check_steps("noise_range_t[0]", noise_range_t[0], 0)
        stop = _check_steps("noise_range_t[1]", noise_range_t[1], start + 1)
        return start, stop
    return _check_steps("noise_range_t", noise_range_t, 0), None


def lr_noise(
    schedule: Schedule,
    noise_range_t: int | Sequence[int] | None = 0,
    noise_pct: float = 0.67,
    noise_std: float = 1.0,
    seed: int = 42,
) -> Schedule:
    r"""timm's learning-rate noise: the LR times :math:`1 + n_t`, a truncated normal draw.

    .. math::
        \eta_t = f(t)\,(1 + n_t) \ \ (t \in R), \qquad \eta_t = f(t) \ \ (t \notin R), \qquad
        n_t \sim \mathcal{N}(0, \sigma^2) \ \text{conditioned on}\ |n_t| < p

    with :math:`R = [t_0, \infty)` for ``noise_range_t`` :math:`= t_0` or :math:`[a, b)` for
    :math:`(a, b)`, :math:`p` = ``noise_pct`` and :math:`\sigma` = ``noise_std``. The draw
    :math:`n_t` comes from the key ``jax.random.fold_in(jax.random.key(seed), t mod 2**32)``
    (``jax.random.truncated_normal`` between :math:`\pm p / \sigma`, times :math:`\sigma`), so
    the schedule stays a pure function of the step: the same step gives the same LR, under
    ``jit``, ``vmap`` or a plain call.

    Matches timm's ``Scheduler`` noise (``noise_range_t``, ``noise_pct``, ``noise_std``,
    ``noise_seed``; normal noise resampled until :math:`|n| < p`, seeded by ``noise_seed + t``)
    in distribution: the draws come from JAX's generator, not PyTorch's. timm accepts
    ``noise_std`` but draws with :math:`\sigma = 1`; here :math:`\sigma` is applied (the
    default 1 agrees).

    Args:
      schedule: the schedule :math:`f`.
      noise_range_t: :math:`t_0 \ge 0` (noise from step :math:`t_0` on), a pair
        ``(start, stop)`` with ``0 <= start < stop``, or ``None`` for no noise (``schedule``
        itself is returned).
      noise_pct: :math:`p > 0`, the bound of the relative noise (traceable; checked unless
        traced).
      noise_std: :math:`\sigma > 0` (traceable; checked unless traced).
      seed: the noise seed, an integer in ``[0, 2**32)`` (traceable, so members of a sweep can
        draw different noise; checked unless traced).

    Returns:
      The noisy schedule.

    Examples:
      >>> import lrjax
      >>> noisy = lrjax.schedules.lr_noise(lrjax.constant(1.0), (10, 20), noise_pct=0.1)
      >>> float(noisy(5)), 0.9 < float(noisy(15)) < 1.1, float(noisy(15)) == float(noisy(15))
      (1.0, True, True)

    References:
      timm ``timm.scheduler.scheduler.Scheduler`` (``_add_noise``); Neelakantan et al., Adding
      Gradient Noise Improves Learning for Very Deep Networks, arXiv:1511.06807, 2015.
    """
    schedule = _check_schedule("schedule", schedule)
    check_magnitude("noise_pct", noise_pct, 0, open_min=True)
    check_magnitude("noise_std", noise_std, 0, open_min=True)
    if not is_traced(seed):
        check_int("seed", seed, 0, 2**32 - 1)
    if noise_range_t is None:
        return schedule
    start, stop = _noise_range(noise_range_t)
    # Segments of the step axis and whether each is noisy.
    starts, active = [0], [start == 0]
    for boundary, on in ((start, True), (stop, False)):
        if boundary is not None and boundary > 0:
            starts.append(boundary)
            active.append(on)

    def noisy(step):
        lr = _f32(schedule(step))
        segment, _ = _locate(step, starts)
        _, data = _split_step(step, 2**32)  # t mod 2**32, exact for integer steps
        data = (
            data.astype(jnp.uint32)
            if isinstance(data, jax.Array)
            else jnp.asarray(np.asarray(data).astype(np.uint32))
        )
        key = jax.random.key(seed)
        bound = _f32(noise_pct) / _f32(noise_std)

        def draw(d):
            return jax.random.truncated_normal(jax.random.fold_in(key, d), -bound, bound)

        noise = jax.vmap(draw)(data.reshape(-1)).reshape(data.shape) * _f32(noise_std)
        return jnp.where(jnp.asarray(active)[segment], lr * (1.0 + noise), lr)

    return noisy
