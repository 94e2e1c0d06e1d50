"""Building blocks of the learning-rate study (`make experiment`), shared by its parts.

Study-only code: it serves the parts in this folder, not lrjax's users, so it lives here (as
flax keeps everything of an example in the example's folder) and is tested in
``tests/study_test.py``.

* :func:`classifier` wraps a Flax classifier as a :class:`lrjax.sweep.Model`;
  :func:`make_model` builds the study's models by name.
* :data:`FAMILIES` and :func:`schedule_family` are the schedule families compared by the
  study, each built from a traced peak learning rate, so a whole family × LR grid is one
  :func:`lrjax.sweep.train` run (with :func:`lrjax.sweep.schedule_family_switch`).
* :func:`evaluate` scores stacked final parameters on a held-out split in one call.
* :func:`lr_sensitivity`, :func:`steps_to_target`, :func:`scaling_fit` and
  :func:`best_so_far` summarize recorded curves (plain NumPy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import models, schedules, sweep
from lrjax.schedules import warmup_cosine_fraction  # its home; kept here as an alias

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "LOSS",
    "best_so_far",
    "classifier",
    "evaluate",
    "family_schedules",
    "lr_sensitivity",
    "make_model",
    "member_grid",
    "scaling_fit",
    "schedule_family",
    "steps_to_target",
    "train_members",
    "warmup_cosine_fraction",
]

LOSS = optax.softmax_cross_entropy_with_integer_labels


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def classifier(module: Any, sample_input: Any) -> sweep.Model:
    """Wraps a ``flax.linen`` classifier as a :class:`lrjax.sweep.Model`.

    Parameters come from the engine's threefry key of each member's seed. A module with batch
    statistics or dropout (a ``train`` argument) becomes a model with state
    (:meth:`lrjax.Model.from_linen`). (An ``"rbg"`` key
    compiles the vmapped init about twice as fast on CPU, but its bits depend on the member's
    position in the vmapped group, so the same seed would start from different parameters
    depending on K and the group size; threefry costs 2-4 s of compile per model and is exact.)
    """
    return sweep.Model.from_linen(module, np.asarray(sample_input)[:1])


def make_model(name: str, sample_input: Any, num_classes: int = 10, **resnet: Any) -> sweep.Model:
    """The study's models: ``"mlp"`` (the MNIST-1D paper's 100-100 MLP), ``"cnn1d"``, or
    ``"resnet"`` (:class:`lrjax.models.ResNet`, BatchNorm and dropout, for images; ``resnet``
    keyword arguments such as ``features=(4,)`` replace its defaults).

    The CNN uses ``conv="slices"`` (same parameters and outputs as the paper's CNN, fast under
    ``vmap``; see :class:`lrjax.models.CNN1D`).
    """
    if name == "mlp":
        module = models.MLP(hidden=(100, 100), num_classes=num_classes)
    elif name == "cnn1d":
        module = models.CNN1D(num_classes=num_classes, conv="slices")
    elif name == "resnet":
        # A JSON config gives lists; the module's fields are tuples.
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in resnet.items()}
        module = models.ResNet(num_classes=num_classes, **fields)
    else:
        raise ValueError(f"model must be 'mlp', 'cnn1d' or 'resnet', got {name!r}")
    if resnet and name != "resnet":
        raise ValueError(f"only the resnet takes keyword arguments, got {sorted(resnet)}")
    return classifier(module, np.asarray(sample_input)[:1])


def member_grid(*sizes: int) -> list[np.ndarray]:
    """Flat member indices of a full grid, row-major (the last axis varies fastest).

    ``member_grid(F, L, S)`` returns three ``[F * L * S]`` index arrays, so member
    ``k = (f * L + l) * S + s`` is grid point ``(f, l, s)``, and per-member results reshape
    to ``[F, L, S]``.

    Examples:
      >>> [a.tolist() for a in member_grid(2, 3)]
      [[0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]]
    """
    return [a.ravel() for a in np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")]


def train_members(
    model: sweep.Model,
    ds: Any,
    *,
    member_seeds: Any,
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
    eval_every: int | None = None,
    eval_params: Callable[[Any, Any], Any] | None = None,
    **train_kwargs: Any,
) -> sweep.SweepResult:
    """One vectorized run under the study's protocol.

    Trains on ``ds``'s training split with cross-entropy; each member's ``member_seeds`` entry
    seeds both its initialisation and its batch order; validation accuracy and loss are
    evaluated every ``eval_every`` steps (choices are made on them; test is scored separately,
    once), at ``eval_params(opt_state, params)`` when given (schedule-free:
    :func:`lrjax.lr_free.eval_params`). ``train_kwargs`` go to :func:`lrjax.sweep.train`
    (``hparams``, ``optimizer_kwargs``, ``num_steps``, ``batch_size``, trackers, ...).
    """
    return sweep.train(
        model,
        LOSS,
        (ds.x_train, ds.y_train),
        optimizer=optimizer,
        seeds=member_seeds,
        data_seeds=member_seeds,
        evaluation=sweep.Evaluation(
            (ds.x_val, ds.y_val),
            eval_every,
            {"accuracy": sweep.accuracy, "loss": LOSS},
            eval_params,
        ),
        **train_kwargs,
    )


# --------------------------------------------------------------------------------------------
# Schedule families
# --------------------------------------------------------------------------------------------

FAMILIES: tuple[str, ...] = (
    "constant",
    "step",
    "multistep",
    "exponential",
    "inverse_time",
    "polynomial",
    "cosine",
    "sgdr",
    "triangular2",
    "one_cycle",
    "warmup_cosine",
    "wsd",
)

FAMILY_LABELS: dict[str, str] = {
    "constant": "constant",
    "step": "step (×0.5 every T/4)",
    "multistep": "multistep (×0.1 at T/2, 3T/4)",
    "exponential": "exponential (to peak/100)",
    "inverse_time": "inverse-time (to peak/11)",
    "polynomial": "polynomial (p=2, to 0)",
    "cosine": "cosine (to 0)",
    "sgdr": "SGDR (T/7, ×2 periods)",
    "triangular2": "cyclical triangular2 (4 cycles)",
    "one_cycle": "one-cycle (30% up)",
    "warmup_cosine": "warmup 10% + cosine",
    "wsd": "WSD (10% warmup, 20% decay)",
}


def schedule_family(name: str, peak: Any, total_steps: int) -> optax.Schedule:
    """The study's schedule ``name`` with peak (initial or maximal) LR ``peak`` over T steps.

    Shapes are fixed fractions of the budget T (see :data:`FAMILY_LABELS`), so every family
    has one free magnitude, the peak, which may be traced: a family × peak grid is one sweep.

    Examples:
      >>> s = schedule_family("multistep", 1.0, 100)
      >>> [round(float(s(t)), 6) for t in (0, 49, 50, 75)]
      [1.0, 1.0, 0.1, 0.01]
    """
    T = total_steps
    if not isinstance(T, int) or T < 10:
        raise ValueError(f"total_steps must be an integer >= 10, got {T!r}")
    if name == "constant":
        return schedules.constant(peak)
    if name == "step":
        return schedules.step_decay(peak, step_size=T // 4, gamma=0.5)
    if name == "multistep":
        return schedules.multistep_decay(peak, [T // 2, 3 * T // 4], gamma=0.1)
    if name == "exponential":
        return schedules.exponential_decay(peak, decay_rate=0.01, decay_steps=T)
    if name == "inverse_time":
        return schedules.inverse_time_decay(peak, decay_rate=1.0, decay_steps=T // 10)
    if name == "polynomial":
        return schedules.polynomial_decay(peak, 0.0, decay_steps=T, power=2.0)
    if name == "cosine":
        return schedules.cosine_decay(peak, decay_steps=T)
    if name == "sgdr":
        # Periods P, 2P, 4P with 7P >= T, so the last cycle ends at (or just after) T.
        return schedules.sgdr(peak, first_period=-(-T // 7), period_mult=2.0)
    if name == "triangular2":
        return schedules.cyclic(0.1 * peak, peak, step_size_up=T // 8, mode="triangular2")
    if name == "one_cycle":
        return schedules.one_cycle(T, peak)
    if name == "warmup_cosine":
        return schedules.warmup_cosine_decay(peak, warmup_steps=0.1, total_steps=T)
    if name == "wsd":
        return schedules.warmup_stable_decay(peak, T, warmup_steps=0.1, decay_steps=0.2)
    raise ValueError(f"schedule family must be one of {', '.join(FAMILIES)}; got {name!r}")


def family_schedules(
    names: Sequence[str], total_steps: int
) -> Callable[[Any, Any], optax.Schedule]:
    """``fn(index, peak) -> schedule``: the family ``names[index]`` at ``peak``, both traced."""
    names = tuple(names)
    for name in names:
        schedule_family(name, 1.0, total_steps)  # validate eagerly

    def build(index, peak):
        return sweep.schedule_family_switch(
            index, [schedule_family(n, peak, total_steps) for n in names]
        )

    return build


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    model: sweep.Model, variables: Any, x: Any, y: Any, batch: int = 1000
) -> dict[str, np.ndarray]:
    """Mean accuracy and cross-entropy ``{name: [K]}`` of stacked ``[K, ...]`` variables
    (:meth:`lrjax.Model.variables`: the params of a stateless model) on (x, y)."""

    @jax.jit
    def scores(p, xb, yb):
        def one(q):
            logits = model.predict(q, xb)
            return jnp.stack([jnp.sum(sweep.accuracy(logits, yb)), jnp.sum(LOSS(logits, yb))])

        return jax.vmap(one)(p)

    x, y = np.asarray(x), np.asarray(y)
    total = sum(
        np.asarray(scores(variables, x[i : i + batch], y[i : i + batch]), np.float64)
        for i in range(0, len(y), batch)
    )
    return {"accuracy": total[:, 0] / len(y), "loss": total[:, 1] / len(y)}


# --------------------------------------------------------------------------------------------
# Summaries of recorded curves
# --------------------------------------------------------------------------------------------


def lr_sensitivity(lrs: Any, scores: Any, tol: float = 0.01) -> tuple[float, float, float]:
    r"""Width, in decades, of the LR range whose score stays within ``tol`` of the best.

    Starting at the best LR of the grid, the range grows along the grid while the score is at
    least ``best - tol``; at each end the crossing of ``best - tol`` is found by linear
    interpolation in :math:`\log_{10}` LR towards the first grid point outside (no
    extrapolation past the grid's ends). Non-finite scores count as outside.

    Args:
      lrs: ``(L,)`` increasing learning rates.
      scores: ``(L,)`` scores to maximize (e.g. mean validation accuracy over seeds).
      tol: the allowed drop (absolute, e.g. 0.01 = one accuracy point).

    Returns:
      ``(width_decades, low_lr, high_lr)``.

    Examples:
      >>> width, low, high = lr_sensitivity([1e-3, 1e-2, 1e-1, 1.0], [0.5, 0.9, 0.9, 0.5], tol=0.2)
      >>> round(width, 6), round(low, 6), round(high, 6)  # halfway to the outer grid points
      (2.0, 0.003162, 0.316228)
    """
    x = np.log10(np.asarray(lrs, np.float64))
    s = np.asarray(scores, np.float64)
    s = np.where(np.isfinite(s), s, -np.inf)
    best = int(np.argmax(s))
    level = s[best] - tol
    lo = hi = best
    while lo > 0 and s[lo - 1] >= level:
        lo -= 1
    while hi < len(s) - 1 and s[hi + 1] >= level:
        hi += 1

    def cross(inside, outside):
        if not np.isfinite(s[outside]):
            return x[inside]
        frac = (s[inside] - level) / (s[inside] - s[outside])
        return x[inside] + frac * (x[outside] - x[inside])

    x_lo = cross(lo, lo - 1) if lo > 0 else x[lo]
    x_hi = cross(hi, hi + 1) if hi < len(s) - 1 else x[hi]
    return float(round(x_hi - x_lo, 12)), float(10**x_lo), float(10**x_hi)


def steps_to_target(eval_steps: Any, scores: Any, target: float) -> np.ndarray:
    """First evaluation step at which each member's score reaches ``target`` (``-1`` if never).

    Examples:
      >>> steps_to_target([0, 10, 20], [[0.1, 0.5, 0.9], [0.1, 0.2, 0.3]], 0.5)
      array([10, -1])
    """
    steps = np.asarray(eval_steps)
    reached = np.asarray(scores, np.float64) >= target
    first = np.argmax(reached, axis=-1)
    return np.where(reached.any(axis=-1), steps[first], -1)


def scaling_fit(batch_sizes: Any, best_lrs: Any, reference: int) -> dict[str, Any]:
    r"""Compares measured best LRs per batch size with the linear and square-root scaling rules.

    From the best LR :math:`\eta_r` at the reference batch size :math:`B_r`, the linear rule
    predicts :math:`\eta_r B / B_r` and the square-root rule :math:`\eta_r \sqrt{B / B_r}`. The
    fitted exponent is the least-squares slope of :math:`\log \eta^*` against
    :math:`\log B` (1 = linear rule, 0.5 = square-root rule, 0 = no scaling).

    Returns:
      ``{"slope", "linear", "sqrt", "log10_error_linear", "log10_error_sqrt"}``: the slope,
      the two rules' predictions per batch size, and the mean absolute error of each rule in
      decades.

    Examples:
      >>> fit = scaling_fit([32, 64, 128], [0.025, 0.05, 0.1], reference=128)
      >>> round(fit["slope"], 6), fit["log10_error_linear"]
      (1.0, 0.0)
    """
    b = np.asarray(batch_sizes, np.float64)
    lr = np.asarray(best_lrs, np.float64)
    if reference not in b:
        raise ValueError(f"reference batch size {reference} must be one of {b.tolist()}")
    ref_lr = lr[int(np.flatnonzero(b == reference)[0])]
    linear = ref_lr * b / reference
    sqrt = ref_lr * np.sqrt(b / reference)
    slope = float(np.polyfit(np.log(b), np.log(lr), 1)[0]) if b.size > 1 else float("nan")

    def err(pred):
        return float(round(np.mean(np.abs(np.log10(pred) - np.log10(lr))), 12))

    return {
        "slope": slope,
        "linear": linear.tolist(),
        "sqrt": sqrt.tolist(),
        "log10_error_linear": err(linear),
        "log10_error_sqrt": err(sqrt),
    }


def best_so_far(scores: Any) -> np.ndarray:
    """Running maximum along the last axis, ignoring NaN (``-inf`` until a finite score).

    Examples:
      >>> best_so_far([0.2, float("nan"), 0.5, 0.4])
      array([0.2, 0.2, 0.5, 0.5])
    """
    s = np.asarray(scores, np.float64)
    return np.maximum.accumulate(np.where(np.isfinite(s), s, -np.inf), axis=-1)
