"""Hugging Face ``transformers`` scheduler names (its ``SchedulerType``), with HF's argument
names and HF's semantics, for :func:`lrjax.schedules.get`.

The peak is ``learning_rate``: the LR that HF's ``LambdaLR`` multiplies by each lambda. Every
builder validates its arguments under HF's names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lrjax._checks import (
    check_choice,
    check_float,
    check_magnitude,
    is_int,
)
from lrjax.schedules._compose import _ramp, join, warmup
from lrjax.schedules._decays import constant, linear, polynomial_decay
from lrjax.schedules._recipes import (
    _wsd,
    cosine_with_hard_restarts,
    inverse_sqrt,
    warmup_cosine_decay,
    warmup_linear_decay,
)
from lrjax.schedules._steps import (
    Schedule,
    _check_ordered,
    _check_steps,
    _check_values,
    _clamp_step,
    _device_int_max,
)


def _hf_lengths(num_warmup_steps, num_training_steps) -> tuple[int, int]:
    """``(W, D)``: HF's warmup and its decay length ``max(1, T - W)``.

    HF divides by ``max(1, T - W)``, so ``W >= T`` is allowed: the warmup, then what HF's
    formula gives one step into a decay of length 1 (0 for ``linear``, the floor for the
    cosines, from where lrjax holds it).
    """
    total = _check_steps("num_training_steps", num_training_steps, 1)
    w = _check_steps("num_warmup_steps", num_warmup_steps, 0)
    return w, max(1, total - w)


def _then(learning_rate, w: int, after: Schedule) -> Schedule:
    """HF's linear warmup ``t / W`` to ``learning_rate``, then ``after`` (for ``W >= T``)."""
    return join([_ramp(0.0, lambda: learning_rate, w, "linear"), after], [w])


def _hf_linear(learning_rate, num_warmup_steps, num_training_steps) -> Schedule:
    """HF ``get_linear_schedule_with_warmup`` (``W >= T``: the warmup, then 0)."""
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    check_magnitude("learning_rate", learning_rate, 0)
    if w >= num_training_steps:
        return _then(learning_rate, w, constant(0.0))
    return warmup_linear_decay(learning_rate, w, w + d)


def _hf_cosine(learning_rate, num_warmup_steps, num_training_steps, num_cycles=0.5) -> Schedule:
    """HF ``get_cosine_schedule_with_warmup``."""
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    check_magnitude("learning_rate", learning_rate, 0)
    return warmup_cosine_decay(learning_rate, w, w + d, num_cycles=num_cycles)


def _hf_cosine_with_restarts(
    learning_rate, num_warmup_steps, num_training_steps, num_cycles=1
) -> Schedule:
    """HF ``get_cosine_with_hard_restarts_schedule_with_warmup``."""
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    check_magnitude("learning_rate", learning_rate, 0)
    return cosine_with_hard_restarts(learning_rate, w, w + d, num_cycles)


def _hf_polynomial(
    learning_rate, num_warmup_steps, num_training_steps, lr_end=1e-7, power=1.0
) -> Schedule:
    """HF ``get_polynomial_decay_schedule_with_warmup`` (it also requires lr_end < lr).

    ``W >= T``: the warmup, then ``lr_end`` (HF divides by zero at step ``W`` when
    ``W == T``).
    """
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    _check_values(learning_rate=learning_rate, lr_end=lr_end)
    check_magnitude("power", power, 0, open_min=True)
    _check_ordered("lr_end", lr_end, "learning_rate", learning_rate, strict=True)
    if w >= num_training_steps:
        return _then(learning_rate, w, constant(lr_end))
    return warmup(polynomial_decay(learning_rate, lr_end, d, power), w)


def _hf_constant(learning_rate, num_warmup_steps=None, num_training_steps=None) -> Schedule:
    """HF ``get_constant_schedule``: HF's ``get_scheduler`` ignores both step counts here (the
    Trainer always passes them), and so does lrjax."""
    check_magnitude("learning_rate", learning_rate, 0)
    return constant(learning_rate)


def _hf_constant_with_warmup(learning_rate, num_warmup_steps, num_training_steps=None) -> Schedule:
    """HF ``get_constant_schedule_with_warmup``."""
    _check_steps("num_warmup_steps", num_warmup_steps, 0)
    check_magnitude("learning_rate", learning_rate, 0)
    return warmup(constant(learning_rate), num_warmup_steps)


def _hf_inverse_sqrt(
    learning_rate, num_warmup_steps, timescale=None, num_training_steps=None
) -> Schedule:
    """HF ``get_inverse_sqrt_schedule``."""
    _check_steps("num_warmup_steps", num_warmup_steps, 0)
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
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    check_magnitude("learning_rate", learning_rate, 0)
    floor = _hf_floor(learning_rate, min_lr, min_lr_rate)
    return warmup_cosine_decay(learning_rate, w, w + d, floor, num_cycles=num_cycles)


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
        q = \frac{t - W + 1}{\max(1, T - W)} \ \ (t \ge W)

    so the floor is reached at :math:`t = T - 1` (``r = 1/W`` gives HF's default
    :math:`(t + 1) / W`). Past that :math:`q` is held at 1 (HF's cosine turns back up).
    """
    w, d = _hf_lengths(num_warmup_steps, num_training_steps)
    check_magnitude("learning_rate", learning_rate, 0)
    floor = _hf_floor(learning_rate, min_lr, min_lr_rate)
    if warmup_lr_rate is None:
        warmup_lr_rate = 1.0 / max(1, w)
    check_magnitude("warmup_lr_rate", warmup_lr_rate, 0, 1)
    cosine = warmup_cosine_decay(learning_rate, 0, d, floor, num_cycles=num_cycles)

    def one_step_ahead(step):
        # Clamped first (below the top of a JAX integer dtype), so the + 1 cannot overflow;
        # the cosine is flat from d.
        top = _device_int_max(step)
        return cosine(_clamp_step(step, d if top is None else min(d, top - 1)) + 1)

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
    """HF ``get_wsd_schedule`` (only its default half cosine, ``num_cycles=0.5``).

    As in HF, ``W + D > T`` starts the cooldown at ``T - D``, before the warmup ends: the LR
    warms up to ``learning_rate`` and then continues from the partly decayed value.
    """
    w = _check_steps("num_warmup_steps", num_warmup_steps, 0)
    d = _check_steps("num_decay_steps", num_decay_steps, 1)
    if num_stable_steps is None:
        if num_training_steps is None:
            raise ValueError("num_training_steps or num_stable_steps must be given, got neither")
        total = _check_steps("num_training_steps", num_training_steps, 1)
    else:
        total = w + _check_steps("num_stable_steps", num_stable_steps, 0) + d
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
    return _wsd(learning_rate, total, w, d, decay_type, floor, floor, warmup_type)


def _hf_reduce_lr_on_plateau(**kwargs: Any) -> Schedule:
    raise ValueError(
        "'reduce_lr_on_plateau' is not a schedule of the step: it reacts to an evaluation "
        "metric. Use lrjax.reduce_on_plateau(mode=..., factor=..., patience=...), a pure "
        "controller whose state.scale multiplies a schedule such as lrjax.constant(lr) (and "
        "lrjax.sweep.train(..., plateau=...) in a training run)"
    )


# name -> (builder, HF function it reproduces, lrjax factory it builds, note for the table)
_HF_SCHEDULES: dict[str, tuple[Callable[..., Schedule], str, str, str]] = {
    "linear": (
        _hf_linear,
        "get_linear_schedule_with_warmup",
        "warmup_linear_decay",
        "num_warmup_steps >= num_training_steps: the warmup, then 0 (as HF)",
    ),
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
        "lr_end < learning_rate, as HF requires; num_warmup_steps >= num_training_steps: the "
        "warmup, then lr_end",
    ),
    "constant": (
        _hf_constant,
        "get_constant_schedule",
        "constant",
        "num_warmup_steps and num_training_steps are accepted and ignored, as HF's get_scheduler "
        "does",
    ),
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
        "num_cycles must be 0.5; num_training_steps and num_stable_steps must agree; "
        "num_warmup_steps + num_decay_steps > num_training_steps starts the cooldown during the "
        "warmup (as HF)",
    ),
}

# Arguments that mark a call as Hugging Face's where a name is both HF's and lrjax's: no lrjax
# factory takes them.
_HF_MARKERS = frozenset({"learning_rate", "num_warmup_steps", "num_training_steps"})
_HF_DURATION_ARGS = frozenset(
    {"num_warmup_steps", "num_decay_steps", "num_stable_steps", "timescale"}
)


def _hf_steps(value: Any, num_training_steps: Any, name: str) -> int:
    """A Hugging Face step count as Hugging Face's ``TrainingArguments`` reads ``warmup_steps``.

    An int is a number of steps; a float in ``[0, 1)`` is a ratio of ``num_training_steps``,
    rounded up (``math.ceil(num_training_steps * ratio)``); a whole float ``>= 1`` (``500.0``)
    is that many steps. HF truncates other floats (``10.7`` to 10); lrjax refuses them.
    """
    if is_int(value):
        return _check_steps(name, value, 0)
    if isinstance(value, float | np.floating) and math.isfinite(value) and value >= 0:
        if value < 1:
            if num_training_steps is None:
                raise ValueError(
                    f"{name}={value!r} is a ratio of num_training_steps, so num_training_steps "
                    "(or total_steps) must be given"
                )
            total = _check_steps("num_training_steps", num_training_steps, 1)
            return math.ceil(total * float(value))
        if value == math.floor(value):
            return _check_steps(name, int(value), 0)
    raise ValueError(
        f"{name} must be an integer number of steps, a float ratio in [0, 1) of "
        "num_training_steps (rounded up, as Hugging Face's TrainingArguments reads "
        f"warmup_steps) or a whole float such as 500.0, got {value!r}"
    )
