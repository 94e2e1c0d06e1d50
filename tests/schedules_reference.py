"""Float64 NumPy references for `lrjax.schedules`, written from each peer library's own source.

Nothing here imports lrjax. Each reference takes integer steps ``t`` (any array-like; ``t`` is
the optimizer count, so ``t = 0`` is the first update, PyTorch's ``last_epoch`` after ``t``
calls of ``scheduler.step()`` and scikit-learn's 1-based ``t`` minus one) and returns float64
learning rates of the same shape.

Where the peer is a stateful algorithm (PyTorch's chainable ``get_lr`` recursions,
``CosineAnnealingWarmRestarts``'s ``T_cur`` bookkeeping, scikit-learn's ``t`` counter), the
reference replays that algorithm step by step in a Python loop instead of using a closed form,
so that it shares as little as possible with lrjax's closed forms.

Sources (read from the peers' repositories):
- PyTorch ``torch/optim/lr_scheduler.py``: StepLR, MultiStepLR, LinearLR, ExponentialLR,
  PolynomialLR, CosineAnnealingLR (``get_lr``), CyclicLR, CosineAnnealingWarmRestarts
  (``step``), OneCycleLR (``_schedule_phases``, ``_annealing_cos``, ``_annealing_linear``).
- Keras ``keras/src/optimizers/schedules/learning_rate_schedule.py``: ExponentialDecay,
  PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay, CosineDecayRestarts.
- Hugging Face ``src/transformers/optimization.py``: the ``_get_*_lr_lambda`` functions.
- scikit-learn ``sklearn/linear_model/_sgd_fast.pyx.tp`` (``_plain_sgd``) and its ``Hinge``.
- optax ``optax/schedules/_schedule.py`` and ``_join.py``.
- timm ``timm/scheduler/tanh_lr.py`` (``TanhLRScheduler._get_lr``), ``cosine_lr.py``
  (``CosineLRScheduler._get_lr``) and ``scheduler.py`` (``_add_noise``).
- Huang et al., Snapshot Ensembles, arXiv:1704.00109, eq. (2).
"""

import bisect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

Ref = Callable[[np.ndarray], np.ndarray]


def _steps(t) -> np.ndarray:
    t = np.asarray(t)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"reference steps must be integers, got {t.dtype}")
    return t.astype(np.int64)


def _closed(fn: Callable[[int], float], t) -> np.ndarray:
    """Evaluates a per-step Python function elementwise."""
    t = _steps(t)
    return np.array([fn(int(s)) for s in t.ravel()], dtype=np.float64).reshape(t.shape)


def _replay(first: float, advance: Callable[[int, float], float], t) -> np.ndarray:
    """Replays a stateful scheduler: ``lr_0 = first``, ``lr_k = advance(k, lr_{k-1})``."""
    t = _steps(t)
    horizon = int(t.max(initial=0))
    lrs = np.empty(horizon + 1, dtype=np.float64)
    lr = first
    lrs[0] = lr
    for k in range(1, horizon + 1):
        lr = advance(k, lr)
        lrs[k] = lr
    return lrs[t]


# 1. constant ------------------------------------------------------------------------------------


def constant(t, value):
    return np.full(_steps(t).shape, float(value))


# 2. linear --------------------------------------------------------------------------------------


def optax_linear(t, init_value, end_value, transition_steps, transition_begin=0):
    """optax.polynomial_schedule with power 1: ``clip(t - B, 0, T)``, then interpolate."""

    def lr(s):
        c = min(max(s - transition_begin, 0), transition_steps)
        frac = 1.0 - c / transition_steps
        return (init_value - end_value) * frac + end_value

    return _closed(lr, t)


def torch_linear_lr(t, base_lr, start_factor, end_factor, total_iters):
    """PyTorch LinearLR, replaying its chainable ``get_lr`` recursion."""

    def advance(k, lr):
        if k > total_iters:
            return lr
        return lr * (
            1.0
            + (end_factor - start_factor)
            / (total_iters * start_factor + (k - 1) * (end_factor - start_factor))
        )

    return _replay(base_lr * start_factor, advance, t)


# 3. step, multi-step, piecewise constant --------------------------------------------------------


def torch_step_lr(t, base_lr, step_size, gamma):
    """PyTorch StepLR ``get_lr``: multiply by gamma whenever last_epoch % step_size == 0."""

    def advance(k, lr):
        return lr if k % step_size != 0 else lr * gamma

    return _replay(base_lr, advance, t)


def torch_step_lr_closed(t, base_lr, step_size, gamma):
    """PyTorch StepLR ``_get_closed_form_lr``: gamma ** (last_epoch // step_size), exact ints."""
    return _closed(lambda s: base_lr * gamma ** (s // step_size), t)


def torch_multistep_lr_closed(t, base_lr, milestones, gamma):
    """PyTorch MultiStepLR ``_get_closed_form_lr``: gamma ** bisect_right(milestones, t)."""
    return _closed(lambda s: base_lr * gamma ** bisect.bisect_right(sorted(milestones), s), t)


def torch_multistep_lr(t, base_lr, milestones, gamma):
    """PyTorch MultiStepLR ``get_lr``: at a milestone multiply by gamma**(its multiplicity)."""
    counts = Counter(milestones)

    def advance(k, lr):
        return lr * gamma ** counts[k] if k in counts else lr

    return _replay(base_lr, advance, t)


def keras_piecewise_constant(t, boundaries, values):
    """Keras PiecewiseConstantDecay: values[0] for t <= b0, ..., values[-1] for t > b_last."""

    def lr(s):
        out = 0.0
        out += float(s <= boundaries[0]) * values[0]
        out += float(s > boundaries[-1]) * values[-1]
        for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1], strict=True):
            out += float(low < s <= high) * v
        return out

    return _closed(lr, t)


# 4. exponential ---------------------------------------------------------------------------------


def keras_optax_exponential(
    t, init_value, decay_rate, decay_steps, staircase=False, end_value=None, transition_begin=0
):
    """Keras ExponentialDecay, with optax.exponential_decay's transition_begin and end_value."""

    def lr(s):
        d = s - transition_begin
        p = d / decay_steps
        if staircase:
            p = math.floor(p)
        value = init_value if d <= 0 else init_value * decay_rate**p
        if end_value is not None:
            value = max(value, end_value) if decay_rate < 1.0 else min(value, end_value)
        return value

    return _closed(lr, t)


def torch_exponential_lr(t, base_lr, gamma):
    """PyTorch ExponentialLR ``get_lr``: multiply by gamma at every step."""
    return _replay(base_lr, lambda k, lr: lr * gamma, t)


# 5. inverse time, scikit-learn -----------------------------------------------------------------


def keras_inverse_time(t, init_value, decay_rate, decay_steps, staircase=False):
    def lr(s):
        p = s / decay_steps
        if staircase:
            p = math.floor(p)
        return init_value / (1.0 + decay_rate * p)

    return _closed(lr, t)


def _sklearn_hinge_gradient(y: float, p: float, threshold: float = 1.0) -> float:
    """``Hinge.cy_gradient`` from sklearn/linear_model/_sgd_fast.pyx.tp."""
    return -y if p * y <= threshold else 0.0


def sklearn_optimal_t0(alpha: float) -> float:
    """scikit-learn's ``optimal_init`` for its default hinge loss (``_plain_sgd``)."""
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    initial_eta0 = typw / max(1.0, _sklearn_hinge_gradient(1.0, -typw))
    return 1.0 / (initial_eta0 * alpha)


def _sklearn_sgd_etas(horizon: int, eta_at: Callable[[int], float]) -> np.ndarray:
    """Runs scikit-learn's sample counter: ``t = 1.0`` before the first sample, ``t += 1``."""
    etas = np.empty(horizon + 1, dtype=np.float64)
    t_sk = 1.0
    for k in range(horizon + 1):
        etas[k] = eta_at(t_sk)
        t_sk += 1
    return etas


def sklearn_invscaling(t, eta0, power_t):
    t = _steps(t)
    etas = _sklearn_sgd_etas(int(t.max(initial=0)), lambda t_sk: eta0 / t_sk**power_t)
    return etas[t]


def sklearn_optimal(t, alpha, t0=None):
    optimal_init = sklearn_optimal_t0(alpha) if t0 is None else t0
    t = _steps(t)
    etas = _sklearn_sgd_etas(
        int(t.max(initial=0)), lambda t_sk: 1.0 / (alpha * (optimal_init + t_sk - 1))
    )
    return etas[t]


# 6. polynomial ----------------------------------------------------------------------------------


def keras_polynomial(t, init_value, end_value, decay_steps, power=1.0, cycle=False):
    """Keras PolynomialDecay, including cycle=True (``t == 0`` counts as one period)."""

    def lr(s):
        d = float(decay_steps)
        if cycle:
            d *= 1.0 if s == 0 else math.ceil(s / decay_steps)
            x = float(s)
        else:
            x = min(float(s), d)
        return (init_value - end_value) * (1.0 - x / d) ** power + end_value

    return _closed(lr, t)


def torch_polynomial_lr(t, base_lr, total_iters, power):
    """PyTorch PolynomialLR ``get_lr`` recursion (decays to 0, then stays)."""

    def advance(k, lr):
        if k > total_iters:
            return lr
        return lr * ((1.0 - k / total_iters) / (1.0 - (k - 1) / total_iters)) ** power

    return _replay(base_lr, advance, t)


# 7. cosine --------------------------------------------------------------------------------------


def torch_cosine_annealing(t, base_lr, t_max, eta_min):
    """PyTorch CosineAnnealingLR's chainable ``get_lr`` recursion (valid on [0, T_max])."""

    def advance(k, lr):
        if (k - 1 - t_max) % (2 * t_max) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * k / t_max)) / (1 + math.cos(math.pi * (k - 1) / t_max)) * (
            lr - eta_min
        ) + eta_min

    return _replay(base_lr, advance, t)


def keras_cosine_decay(t, init_value, decay_steps, alpha=0.0):
    """Keras CosineDecay without warmup: ``step = min(step, decay_steps)``."""

    def lr(s):
        x = min(s, decay_steps)
        c = 0.5 * (1.0 + math.cos(math.pi * x / decay_steps))
        return init_value * ((1 - alpha) * c + alpha)

    return _closed(lr, t)


def cosine_to_floor(t, init_value, decay_steps, end_value=0.0):
    """PyTorch CosineAnnealingLR recursion on [0, T]; Keras CosineDecay's constant past T."""
    t = _steps(t)
    inside = torch_cosine_annealing(np.minimum(t, decay_steps), init_value, decay_steps, end_value)
    return np.where(t <= decay_steps, inside, end_value)


# 8. SGDR ----------------------------------------------------------------------------------------


def torch_cosine_warm_restarts(t, base_lr, t_0, t_mult=1, eta_min=0.0):
    """PyTorch CosineAnnealingWarmRestarts, replaying ``step()``'s T_cur / T_i bookkeeping."""
    t = _steps(t)
    horizon = int(t.max(initial=0))
    lrs = np.empty(horizon + 1, dtype=np.float64)
    # Construction calls step() once with last_epoch = -1, i.e. step(epoch=0): T_i = T_0, T_cur = 0.
    t_i, t_cur = t_0, 0
    for k in range(horizon + 1):
        if k > 0:  # step() with epoch=None
            t_cur = t_cur + 1
            if t_cur >= t_i:
                t_cur = t_cur % t_i
                t_i = t_i * t_mult
        lrs[k] = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
    return lrs[t]


def torch_cosine_warm_restarts_closed(t, base_lr, t_0, eta_min=0.0):
    """CosineAnnealingWarmRestarts ``step(epoch)`` for T_mult = 1: T_cur = epoch % T_0."""

    def lr(s):
        t_cur = s % t_0  # Python ints: exact at any step
        return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_0)) / 2

    return _closed(lr, t)


def keras_cosine_decay_restarts(t, init_value, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """Keras CosineDecayRestarts, locating the restart by walking the periods one by one."""

    def lr(s):
        start, length, i = 0.0, float(first_decay_steps), 0
        while s >= start + length:
            start += length
            length *= t_mul
            i += 1
        frac = (s - start) / length
        cosine_decayed = 0.5 * m_mul**i * (1.0 + math.cos(math.pi * frac))
        return init_value * ((1 - alpha) * cosine_decayed + alpha)

    return _closed(lr, t)


def sgdr_restart_steps(first_period, period_mult, count):
    """The first ``count`` restart steps s_i (i >= 1), walked period by period."""
    out, start, length = [], 0.0, float(first_period)
    for _ in range(count):
        start += length
        length *= period_mult
        out.append(start)
    return out


# 9. cyclical ------------------------------------------------------------------------------------


def torch_cyclic(
    t, base_lr, max_lr, step_size_up, step_size_down=None, mode="triangular", gamma=1.0
):
    """PyTorch CyclicLR ``get_lr`` (built-in modes; exp_range scales by gamma**last_epoch)."""
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    total = up + down
    ratio = up / total
    scale_fns = {
        "triangular": (lambda x: 1.0, "cycle"),
        "triangular2": (lambda x: 1 / (2.0 ** (x - 1)), "cycle"),
        "exp_range": (lambda x: gamma**x, "iterations"),
    }
    scale_fn, scale_mode = scale_fns[mode]

    def lr(s):
        cycle = math.floor(1 + s / total)
        x = 1.0 + s / total - cycle
        scale_factor = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        base_height = (max_lr - base_lr) * scale_factor
        return base_lr + base_height * scale_fn(cycle if scale_mode == "cycle" else s)

    return _closed(lr, t)


# 10. one-cycle ----------------------------------------------------------------------------------


def _torch_one_cycle_phases(total_steps, pct_start, three_phase):
    if three_phase:
        return [
            (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_m", "base_m"),
            (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_m", "max_m"),
            (total_steps - 1, "initial_lr", "min_lr", "max_m", "max_m"),
        ]
    return [
        (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_m", "base_m"),
        (total_steps - 1, "max_lr", "min_lr", "base_m", "max_m"),
    ]


def _torch_anneal(kind, start, end, pct):
    if kind == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def torch_one_cycle(
    t,
    total_steps,
    max_lr,
    pct_start=0.3,
    div_factor=25.0,
    final_div_factor=1e4,
    anneal_strategy="cos",
    three_phase=False,
    base_momentum=0.85,
    max_momentum=0.95,
    which="lr",
):
    """PyTorch OneCycleLR ``get_lr`` (lr or momentum); past total_steps - 1 it holds the end."""
    group = {"initial_lr": max_lr / div_factor, "max_lr": max_lr}
    group["min_lr"] = group["initial_lr"] / final_div_factor
    group["max_m"], group["base_m"] = max_momentum, base_momentum
    phases = _torch_one_cycle_phases(total_steps, pct_start, three_phase)

    def lr(s):
        # PyTorch raises past total_steps; lrjax documents holding the last value instead.
        step_num = min(s, total_steps - 1)
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
            if step_num <= end_step or i == len(phases) - 1:
                pct = (step_num - start_step) / (end_step - start_step)
                if which == "lr":
                    return _torch_anneal(anneal_strategy, group[lr0], group[lr1], pct)
                return _torch_anneal(anneal_strategy, group[m0], group[m1], pct)
            start_step = end_step
        raise AssertionError("unreachable")

    return _closed(lr, t)


# 11. warmup combinator --------------------------------------------------------------------------


def warmup(t, inner: Ref, warmup_steps, init_value=0.0, mode="linear"):
    """lrjax's documented combinator: warm from init to peak = inner(0), then inner(t - W)."""
    t = _steps(t)
    peak = float(inner(np.zeros((), np.int64)))
    after = inner(np.maximum(t - warmup_steps, 0))
    x = t / max(warmup_steps, 1)
    if mode == "linear":
        warm = init_value + (peak - init_value) * x
    elif mode == "1-sqrt":
        warm = init_value + (peak - init_value) * (1 - np.sqrt(np.clip(1 - x, 0, None)))
    elif mode == "exponential":
        warm = init_value * (peak / init_value) ** x
    elif mode == "cosine":
        warm = init_value + (peak - init_value) * (1 - np.cos(np.pi * x)) / 2
    else:
        raise ValueError(mode)
    return np.where(t < warmup_steps, warm, after)


# 12. transformer recipes (Hugging Face lambdas, verbatim) ---------------------------------------


def hf_linear_with_warmup_lambda(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(
        0.0,
        float(num_training_steps - current_step)
        / float(max(1, num_training_steps - num_warmup_steps)),
    )


def hf_constant_with_warmup_lambda(current_step, *, num_warmup_steps):
    """``_get_constant_schedule_with_warmup_lr_lambda``."""
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def hf_polynomial_lambda(
    current_step, *, num_warmup_steps, num_training_steps, lr_end, power, lr_init
):
    """``_get_polynomial_decay_schedule_with_warmup_lr_lambda`` (a factor of lr_init)."""
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    if current_step > num_training_steps:
        return lr_end / lr_init
    decay_steps = num_training_steps - num_warmup_steps
    pct_remaining = 1 - (current_step - num_warmup_steps) / decay_steps
    return ((lr_init - lr_end) * pct_remaining**power + lr_end) / lr_init


def hf_cosine_warmup_with_min_lr_rate_lambda(
    current_step,
    *,
    num_warmup_steps,
    num_training_steps,
    num_cycles,
    min_lr_rate=0.0,
    warmup_lr_rate=None,
):
    """``_get_cosine_with_min_lr_schedule_with_warmup_lr_rate_lambda``: one step ahead."""
    step, warm, total = float(current_step), float(num_warmup_steps), float(num_training_steps)
    if step < warm:
        if warmup_lr_rate is None:
            return (step + 1.0) / max(1.0, warm)
        return warmup_lr_rate + (1.0 - warmup_lr_rate) * step / max(1, warm - 1)
    progress = (step - warm + 1.0) / max(1.0, total - warm)
    factor = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress))
    return max(0, factor * (1 - min_lr_rate) + min_lr_rate)


def hf_cosine_with_warmup_lambda(
    current_step, *, num_warmup_steps, num_training_steps, num_cycles, min_lr_rate=0.0
):
    """``_get_cosine_schedule_with_warmup_lr_lambda`` (the min_lr_rate variant)."""
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(
        max(1, num_training_steps - num_warmup_steps)
    )
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def hf_hard_restarts_lambda(current_step, *, num_warmup_steps, num_training_steps, num_cycles):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(
        max(1, num_training_steps - num_warmup_steps)
    )
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))


def hf_inverse_sqrt_lambda(current_step, *, num_warmup_steps, timescale=None):
    if timescale is None:  # get_inverse_sqrt_schedule's default
        timescale = num_warmup_steps or 10_000
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    shift = timescale - num_warmup_steps
    return 1.0 / math.sqrt((current_step + shift) / timescale)


def hf_wsd_lambda(
    current_step,
    *,
    num_warmup_steps,
    num_stable_steps,
    num_decay_steps,
    warmup_type="linear",
    decay_type="cosine",
    min_lr_ratio=0.0,
    num_cycles=0.5,
):
    if current_step < num_warmup_steps:
        progress = float(current_step) / float(max(1, num_warmup_steps))
        if warmup_type == "linear":
            factor = progress
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * progress))
        elif warmup_type == "1-sqrt":
            factor = 1.0 - math.sqrt(1.0 - progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    if current_step < num_warmup_steps + num_stable_steps:
        return 1.0
    if current_step < num_warmup_steps + num_stable_steps + num_decay_steps:
        progress = float(current_step - num_warmup_steps - num_stable_steps) / float(
            max(1, num_decay_steps)
        )
        if decay_type == "linear":
            factor = 1.0 - progress
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        elif decay_type == "1-sqrt":
            factor = 1.0 - math.sqrt(progress)
        factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
        return max(0.0, factor)
    return min_lr_ratio


def _warm_then(t, warmup_steps, peak, init, warm_factor, after):
    """Hugging Face's warmup factor is t / W from 0; lrjax generalises the start to init."""

    def lr(s):
        if s < warmup_steps:
            return init + (peak - init) * warm_factor(s)
        return after(s)

    return _closed(lr, t)


def hf_warmup_linear_decay(t, peak_value, warmup_steps, total_steps, end_value=0.0, init_value=0.0):
    def f(s):
        return hf_linear_with_warmup_lambda(
            s, num_warmup_steps=warmup_steps, num_training_steps=total_steps
        )

    return _warm_then(
        t,
        warmup_steps,
        peak_value,
        init_value,
        f,
        lambda s: end_value + (peak_value - end_value) * f(s),
    )


def hf_warmup_cosine_decay(
    t, peak_value, warmup_steps, total_steps, end_value=0.0, init_value=0.0, num_cycles=0.5
):
    """HF cosine_with_min_lr (min_lr = end_value); progress held at 1 past total (lrjax)."""

    def f(s):
        return hf_cosine_with_warmup_lambda(
            min(s, total_steps),
            num_warmup_steps=warmup_steps,
            num_training_steps=total_steps,
            num_cycles=num_cycles,
            min_lr_rate=end_value / peak_value,
        )

    return _warm_then(t, warmup_steps, peak_value, init_value, f, lambda s: peak_value * f(s))


def hf_cosine_hard_restarts(
    t, peak_value, warmup_steps, total_steps, num_cycles=1, end_value=0.0, init_value=0.0
):
    def f(s):
        return hf_hard_restarts_lambda(
            s, num_warmup_steps=warmup_steps, num_training_steps=total_steps, num_cycles=num_cycles
        )

    return _warm_then(
        t,
        warmup_steps,
        peak_value,
        init_value,
        f,
        lambda s: end_value + (peak_value - end_value) * f(s),
    )


def hf_inverse_sqrt(t, peak_value, warmup_steps, timescale=None, init_value=0.0):
    def f(s):
        return hf_inverse_sqrt_lambda(s, num_warmup_steps=warmup_steps, timescale=timescale)

    return _warm_then(t, warmup_steps, peak_value, init_value, f, lambda s: peak_value * f(s))


def hf_wsd(
    t,
    peak_value,
    total_steps,
    warmup_steps,
    decay_steps,
    decay_type="linear",
    end_value=0.0,
    init_value=0.0,
):
    """HF get_wsd_schedule (linear warmup), with separate start (init) and end values.

    HF warms up from ``min_lr_ratio * lr`` and decays to the same value; with
    ``init_value == end_value == min_lr_ratio * peak`` this is HF exactly.
    """
    stable = total_steps - warmup_steps - decay_steps

    def factor(s, ratio):
        return hf_wsd_lambda(
            s,
            num_warmup_steps=warmup_steps,
            num_stable_steps=stable,
            num_decay_steps=decay_steps,
            warmup_type="linear",
            decay_type=decay_type,
            min_lr_ratio=ratio,
        )

    def lr(s):
        if s < warmup_steps:  # factor(s, 0) is the bare warmup progress t / W
            return init_value + (peak_value - init_value) * factor(s, 0.0)
        return end_value + (peak_value - end_value) * factor(s, 0.0)

    return _closed(lr, t)


# 14. snapshot ensembles -------------------------------------------------------------------------


def huang_snapshot(t, init_value, total_steps, num_cycles):
    """Huang et al. eq. (2) with 1-based iteration t_paper = t + 1: mod(t_paper - 1, ceil(T/M))."""
    length = math.ceil(total_steps / num_cycles)

    def lr(s):
        t_paper = s + 1
        return init_value / 2 * (math.cos(math.pi * ((t_paper - 1) % length) / length) + 1)

    return _closed(lr, t)


def huang_snapshot_steps(total_steps, num_cycles):
    length = math.ceil(total_steps / num_cycles)
    return tuple(min(k * length, total_steps) for k in range(1, num_cycles + 1))


# 15. tanh ---------------------------------------------------------------------------------------


def timm_tanh(t, init_value, total_steps, end_value=0.0, lower_bound=-7.0, upper_bound=3.0):
    """timm TanhLRScheduler._get_lr, one cycle (cycle_limit=1), no warmup, no noise."""

    def lr(s):
        i = s // total_steps
        if i >= 1:
            return end_value
        tr = (s - total_steps * i) / total_steps
        return end_value + 0.5 * (init_value - end_value) * (
            1 - math.tanh(lower_bound * (1.0 - tr) + upper_bound * tr)
        )

    return _closed(lr, t)


# SWA -------------------------------------------------------------------------------------------


def torch_swalr(t, inner: Ref, swa_start, swa_lr, anneal_epochs=10, anneal_strategy="cos"):
    """``inner`` until ``swa_start``, then PyTorch SWALR built on the LR ``inner(swa_start)``.

    Replays ``SWALR.get_lr`` (torch/optim/swa_utils.py), including its recovery of the initial
    LR through ``_get_initial_lr``; SWALR is constructed at ``swa_start`` (its initial step) and
    stepped once per update after that.
    """
    if anneal_strategy == "cos":

        def anneal(x):
            return (1 - math.cos(math.pi * x)) / 2
    else:

        def anneal(x):
            return x

    def get_initial_lr(lr, alpha):
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(step_count, lr):
        step = step_count - 1
        if anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, anneal_epochs)))
        prev_lr = get_initial_lr(lr, anneal(prev_t))
        alpha = anneal(max(0, min(1, step / max(1, anneal_epochs))))
        return swa_lr * alpha + prev_lr * (1 - alpha)

    t = _steps(t)
    horizon = int(t.max(initial=0))
    lrs = np.empty(max(horizon, swa_start) + 1, dtype=np.float64)
    lrs[:swa_start] = inner(np.arange(swa_start))
    lr = float(inner(np.asarray(swa_start)))
    for k in range(lrs.size - swa_start):
        lr = get_lr(k + 1, lr)
        lrs[swa_start + k] = lr
    return lrs[t]


# 16. composition --------------------------------------------------------------------------------


def optax_join(t, pieces: Sequence[Ref], boundaries: Sequence[int]):
    """optax.join_schedules: each later piece sees ``t - boundary``."""
    t = _steps(t)
    out = pieces[0](t)
    for boundary, piece in zip(boundaries, pieces[1:], strict=True):
        out = np.where(t < boundary, out, piece(np.maximum(t - boundary, 0)))
    return out


def scale(t, inner: Ref, factor):
    return factor * inner(_steps(t))


def clip(t, inner: Ref, min_value=None, max_value=None):
    out = inner(_steps(t))
    if min_value is not None:
        out = np.maximum(out, min_value)
    if max_value is not None:
        out = np.minimum(out, max_value)
    return out


def repeat(t, inner: Ref, period):
    return inner(_steps(t) % period)


def warmup_cosine_fraction(t, peak_value, warmup_fraction, total_steps):
    """Linear warmup to the (fractional) step W = f T, then a half cosine to 0 at T."""
    w = warmup_fraction * total_steps

    def one(s):
        s = min(s, total_steps)
        if s < w:
            return peak_value * s / max(w, 1.0)
        progress = min(max((s - w) / max(total_steps - w, 1.0), 0.0), 1.0)
        return peak_value * 0.5 * (1.0 + math.cos(math.pi * progress))

    return _closed(one, t)


# SGDR restarts in exact rational arithmetic --------------------------------------------------


def exact_cycles(first_period, period_mult, limit):
    """``(starts, lengths)`` of SGDR's cycles as Fractions, walked period by period.

    ``period_mult`` is taken at its exact binary value (``Fraction(float)``), the value every
    float64 computation of the restarts starts from. The walk stops at the first cycle that
    starts beyond ``limit``.
    """
    m = Fraction(period_mult)
    if m == 1:
        raise ValueError("equal cycles need no walk: use cycle_of")
    starts, lengths, start, length = [], [], Fraction(0), Fraction(first_period)
    while start <= limit:
        starts.append(start)
        lengths.append(length)
        start += length
        length *= m
    starts.append(start)
    lengths.append(length)
    return starts, lengths


def cycle_of(first_period, period_mult, limit):
    """A function ``s -> (i, t_curr, t_i)``: the cycle of step ``s``, the steps into it and its
    length, all exact (integer division for equal cycles, Fractions otherwise)."""
    if Fraction(period_mult) == 1:
        return lambda s: (s // first_period, Fraction(s % first_period), Fraction(first_period))
    starts, lengths = exact_cycles(first_period, period_mult, limit)

    def locate(s):
        i = bisect.bisect_right(starts, s) - 1
        return i, s - starts[i], lengths[i]

    return locate


def exact_restart_steps(first_period, period_mult, limit):
    """The integer steps ``ceil(s_i)`` at which SGDR's cycles ``i >= 1`` start, up to limit."""
    starts, _ = exact_cycles(first_period, period_mult, limit)
    return [math.ceil(s) for s in starts[1:] if math.ceil(s) <= limit]


def sgdr_exact(
    t,
    init_value,
    first_period,
    period_mult=1.0,
    peak_decay=1.0,
    end_value=0.0,
    limit=None,
    k_decay=1.0,
    cycle_limit=None,
):
    """Keras' CosineDecayRestarts with the cycle located exactly (Fractions), plus timm's
    ``cycle_limit`` and ``k_decay``. ``limit`` bounds the steps asked for."""
    t = _steps(t)
    locate = cycle_of(first_period, period_mult, int(t.max(initial=0)))

    def lr(s):
        i, t_curr, t_i = locate(s)
        if cycle_limit is not None and i >= cycle_limit:
            return end_value
        elapsed = float(t_curr / t_i)
        w = (1 + math.cos(math.pi * elapsed**k_decay)) / 2
        return end_value + (init_value - end_value) * peak_decay**i * w

    return _closed(lr, t)


# timm's CosineLRScheduler and LR noise (timm/scheduler/cosine_lr.py, scheduler.py) -----------


def timm_cosine(
    t,
    base_lr,
    t_initial,
    lr_min=0.0,
    cycle_mul=1.0,
    cycle_decay=1.0,
    cycle_limit=1,
    warmup_t=0,
    warmup_lr_init=0.0,
    warmup_prefix=False,
    k_decay=1.0,
):
    """``CosineLRScheduler._get_lr``, with the cycle located exactly (timm uses a float log)."""
    t = _steps(t)
    locate = cycle_of(t_initial, cycle_mul, int(t.max(initial=0)))

    def lr(s):
        if s < warmup_t:
            return warmup_lr_init + s * (base_lr - warmup_lr_init) / warmup_t
        if warmup_prefix:
            s = s - warmup_t
        i, t_curr, t_i = locate(s)
        lr_max = base_lr * cycle_decay**i
        if cycle_limit is not None and i >= cycle_limit:
            return lr_min
        return lr_min + 0.5 * (lr_max - lr_min) * (
            1 + math.cos(math.pi * float(t_curr) ** k_decay / float(t_i) ** k_decay)
        )

    return _closed(lr, t)


def truncated_normal_moments(pct, std):
    """Mean (0) and standard deviation of N(0, std**2) conditioned on |n| < pct, the noise of
    timm's ``_add_noise`` (resampled until ``abs(noise) < noise_pct``)."""
    a = pct / std
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))
    return 0.0, std * math.sqrt(1 - 2 * a * phi / mass)


# optax cosine_decay_schedule with exponent (optax/schedules/_schedule.py) --------------------


def optax_cosine(t, init_value, decay_steps, alpha=0.0, exponent=1.0):
    """``init * ((1 - alpha) * (0.5 (1 + cos(pi min(t, T) / T)))**exponent + alpha)``."""
    t = np.minimum(_steps(t), decay_steps).astype(np.float64)
    cosine = 0.5 * (1 + np.cos(np.pi * t / decay_steps))
    return init_value * ((1 - alpha) * cosine**exponent + alpha)
