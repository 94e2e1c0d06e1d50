"""The learning-rate range test (LR finder) on your own step, functional and vectorized.

The classic test (Smith 2017) raises the learning rate every step, exponentially or linearly,
from ``start_lr`` to ``end_lr`` and records the loss. :func:`range_test` (``lrjax.range_test``)
runs it on the training step you already have, as fastai's ``lr_find`` and Lightning's tuner
take your training loop: the ramp is written into your optimizer's injected learning rate by the
controller (:func:`lrjax.control`), the whole test is one ``jax.lax.scan`` inside one
``jax.jit`` program, and ``jax.vmap`` runs it for several seeds (or settings) at once, so the
curve comes with a spread. Nothing is mutated: each run starts from ``init`` and the test
returns arrays, so there is no model to "restore" afterwards. :func:`model_range_test` is the
convenience for a model and a per-example loss.

The parallel test (:func:`parallel_range_test`) trains K fixed learning rates on a log grid
for a short budget with :func:`lrjax.sweep.train` and reads the loss after the budget.

Suggestions are plain NumPy functions of a recorded curve: :func:`suggest_steepest`,
:func:`suggest_valley`, :func:`suggest_minimum` and :func:`suggest_robust`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, controller, engine, feeds, loop, schedules, supervised, sweep
from lrjax._fingerprint import cache as _cache_by_fingerprint

__all__ = [
    "ParallelRangeTestResult",
    "RangeTestResult",
    "parallel_range_test",
    "range_test",
    "suggest_minimum",
    "suggest_robust",
    "suggest_steepest",
    "suggest_valley",
]

_MODES = ("exponential", "linear")


# --------------------------------------------------------------------------------------------
# Suggestions: functions of a recorded curve.
# --------------------------------------------------------------------------------------------


def _curve(lrs: Any, losses: Any) -> tuple[np.ndarray, np.ndarray]:
    lrs, losses = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
    if lrs.ndim != 1 or lrs.shape != losses.shape[-1:]:
        raise ValueError(
            f"lrs must be 1-D and match the last axis of losses, got {lrs.shape} and {losses.shape}"
        )
    if lrs.size < 2:
        raise ValueError(f"a curve needs at least 2 points, got {lrs.size}")
    return lrs, losses


def suggest_steepest(lrs: Any, losses: Any) -> float:
    r"""The LR where the loss falls fastest against :math:`\log \eta`.

    .. math:: i^* = \arg\min_i \frac{\ell_{i+1} - \ell_i}{\log \eta_{i+1} - \log \eta_i},
              \qquad \eta^* = \eta_{i^*}

    fastai's ``steep`` rule.

    Args:
      lrs: increasing learning rates :math:`\eta_i`, shape ``(N,)``.
      losses: (smoothed) losses :math:`\ell_i`, shape ``(N,)``.

    Returns:
      The suggested learning rate.

    Examples:
      >>> suggest_steepest([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.9, 1.0, 0.9])
      0.01
    """
    lrs, losses = _curve(lrs, losses)
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def suggest_valley(lrs: Any, losses: Any) -> float:
    r"""fastai's ``valley`` rule: a point part-way down the longest descending stretch.

    For each point :math:`i`, :math:`d_i` is the length of the longest strictly decreasing
    subsequence of losses ending at :math:`i`, built left to right. The valley ends at the
    first :math:`e` reaching the largest :math:`d`; it starts at :math:`s = e - d'_e`, where
    :math:`d'_e` is the length found for :math:`e` at the moment it first beat the previous
    record (fastai records the start then and does not revisit it). The suggestion is the LR at
    :math:`s + \lfloor (e - s)/3 \rfloor + \lfloor (e - s)/6 \rfloor`, about halfway down the
    valley, where the loss still falls steadily.

    Args:
      lrs: increasing learning rates, shape ``(N,)``.
      losses: (smoothed) losses, shape ``(N,)``.

    Returns:
      The suggested learning rate.

    Examples:
      >>> lrs = [10.0 ** k for k in range(-6, 1)]
      >>> suggest_valley(lrs, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 9.0])
      0.0001

    References:
      fastai ``fastai.callback.schedule.valley`` (fastai 2.5+).
    """
    lrs, losses = _curve(lrs, losses)
    longest = np.ones(losses.size, dtype=int)
    end, start = 0, 0
    for i in range(1, losses.size):
        # How d_i grows as the earlier points j = 0..i-1 are visited in order.
        candidates = np.where(losses[:i] > losses[i], longest[:i] + 1, 1)
        growth = np.maximum.accumulate(candidates)
        longest[i] = growth[-1]
        beats = np.flatnonzero(growth > longest[end])
        if beats.size:
            end, start = i, i - growth[beats[0]]
    span = (end - start) / 3
    return float(lrs[start + int(span) + int(span / 2)])


def suggest_minimum(lrs: Any, losses: Any) -> float:
    r"""One tenth of the LR at the minimum loss: :math:`\eta_{\arg\min_i \ell_i} / 10`.

    fastai's ``minimum`` rule and the classic advice of Smith (2017).

    Args:
      lrs: increasing learning rates, shape ``(N,)``.
      losses: (smoothed) losses, shape ``(N,)``.

    Returns:
      The suggested learning rate.

    Examples:
      >>> suggest_minimum([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, 3.0])
      0.01
    """
    lrs, losses = _curve(lrs, losses)
    return float(lrs[int(np.argmin(losses))] / 10.0)


def suggest_robust(lrs: Any, losses: Any, num_std: float = 1.0) -> float:
    r"""lrjax's rule: the minimum rule on the pessimistic edge of the seed band.

    With the mean :math:`\mu_i` and standard deviation :math:`\sigma_i` of the smoothed loss
    over seeds at each LR,

    .. math:: \eta^* = \frac{1}{10}\, \eta_{\arg\min_i (\mu_i + k \sigma_i)}

    Near divergence the seeds disagree, :math:`\sigma` grows and the pessimistic edge turns up
    before the mean does, so a single lucky seed cannot drag the suggestion towards the cliff.
    With one seed it is :func:`suggest_minimum`.

    Args:
      lrs: increasing learning rates, shape ``(N,)``.
      losses: smoothed losses of each seed, shape ``(S, N)``, restricted to LRs where every
        seed is still valid.
      num_std: :math:`k`, how pessimistic the edge is.

    Returns:
      The suggested learning rate.

    Examples:
      >>> lrs = [1e-3, 1e-2, 1e-1, 1.0]
      >>> seeds = [[2.0, 1.0, 0.6, 0.3], [2.0, 1.0, 0.6, 2.5]]
      >>> suggest_robust(lrs, seeds)
      0.01
    """
    lrs, losses = _curve(lrs, losses)
    losses = np.atleast_2d(losses)
    edge = losses.mean(axis=0) + num_std * losses.std(axis=0)
    return float(lrs[int(np.argmin(edge))] / 10.0)


# --------------------------------------------------------------------------------------------
# The classic test.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RangeTestResult:
    """What a range test recorded, per run (seed or optimizer setting).

    Attributes:
      learning_rates: ``(N,)`` the LR each update used, read from the optimizer state.
      loss: ``(R, N)`` raw loss at each step: the training batch's loss before the update, or,
        in validation mode, the held-out batch's loss after it.
      smoothed: ``(R, N)`` bias-corrected exponential moving average of ``loss``.
      valid: ``(R, N)`` True until the run diverged; later points are masked.
      diverged_at: ``(R,)`` index of the first invalid step (``N`` if the run never diverged).
      seeds: ``(R,)`` the seed of each run.
    """

    learning_rates: np.ndarray
    loss: np.ndarray
    smoothed: np.ndarray
    valid: np.ndarray
    diverged_at: np.ndarray
    seeds: np.ndarray

    @property
    def divergence_lr(self) -> np.ndarray:
        """``(R,)`` the LR at which each run diverged (``nan`` if it never did)."""
        n = self.learning_rates.size
        at = np.minimum(self.diverged_at, n - 1)
        return np.where(self.diverged_at < n, self.learning_rates[at], np.nan)

    def suggestions(self, skip_start: int | None = None, skip_end: int = 5) -> dict[str, float]:
        """Every suggestion rule, on the points valid for all runs.

        As fastai does, the first ``skip_start`` points (default ``N // 10``) and the last
        ``skip_end`` valid points are left out. ``steepest``, ``valley`` and ``minimum`` use the
        mean smoothed curve over runs; ``robust`` uses the spread (:func:`suggest_robust`).

        Returns:
          ``{"steepest": ..., "valley": ..., "minimum": ..., "robust": ...}``.
        """
        n = self.learning_rates.size
        skip_start = n // 10 if skip_start is None else skip_start
        stop = int(self.diverged_at.min()) - skip_end
        if stop - skip_start < 2:
            raise ValueError(
                f"too few valid points for suggestions: runs diverged at step "
                f"{int(self.diverged_at.min())} of {n}; lower start_lr or raise num_steps"
            )
        lrs = self.learning_rates[skip_start:stop]
        curves = self.smoothed[:, skip_start:stop]
        mean = curves.mean(axis=0)
        return {
            "steepest": suggest_steepest(lrs, mean),
            "valley": suggest_valley(lrs, mean),
            "minimum": suggest_minimum(lrs, mean),
            "robust": suggest_robust(lrs, curves),
        }


def _lr_range(start_lr: Any, end_lr: Any) -> tuple[float, float]:
    start_lr = _checks.check_float("start_lr", start_lr)
    end_lr = _checks.check_float("end_lr", end_lr)
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    return start_lr, end_lr


def _lr_ramp(start_lr: float, end_lr: float, num_steps: int, mode: str) -> optax.Schedule:
    if mode == "exponential":
        return schedules.exponential_decay(start_lr, end_lr / start_lr, num_steps - 1)
    return schedules.linear(start_lr, end_lr, num_steps - 1)


@dataclasses.dataclass(frozen=True)
class Ramp:
    """The controller's rule of the classic test: every run's learning rate follows the same
    ramp from ``start_lr`` to ``end_lr`` over ``num_steps`` (a frozen dataclass, so equal ramps
    share compiled programs)."""

    start_lr: float
    end_lr: float
    num_steps: int
    mode: str

    def __call__(self, member: Any) -> optax.Schedule:
        del member
        return _lr_ramp(self.start_lr, self.end_lr, self.num_steps, self.mode)


@dataclasses.dataclass(frozen=True)
class _Order:
    """Each run's batch order: ``seeds[k]`` for run ``k`` (the padding of a group repeats run
    0, as :func:`lrjax.engine.pad_members` does)."""

    seeds: tuple[int, ...]

    def __call__(self, members: Any) -> np.ndarray:
        size = len(jax.tree.leaves(members)[0])
        seeds = np.asarray(self.seeds, np.int32)
        return np.concatenate([seeds, np.repeat(seeds[:1], size - len(seeds))])


@dataclasses.dataclass(frozen=True)
class _FixedKwargs:
    """``optimizer_kwargs`` of the model form: a learning rate the controller sets, and each
    run's own settings."""

    def __call__(self, hparams: Mapping[str, jax.Array]) -> dict[str, Any]:
        return {"learning_rate": jnp.zeros((), jnp.float32), **hparams}


def _with_validation_loss(step, task: supervised.Supervised, validation):
    """The step, reporting the held-out batch's loss after the update instead of the training
    loss (evaluation mode: running batch statistics, no dropout)."""
    loss_metric = (("loss", task.loss),)

    def validated(state, batch, member):
        state, metrics = step(state, batch, member)
        return state, {**metrics, "loss": task.evaluate(state, validation, loss_metric)["loss"]}

    return validated


def _smooth(raw: np.ndarray, beta: float, diverge_factor: float):
    """Bias-corrected EMA of each run's loss, and whether each point is before divergence."""
    smoothed = np.empty_like(raw, dtype=np.float64)
    valid = np.empty(raw.shape, bool)
    avg = np.zeros(raw.shape[0])
    best = np.full(raw.shape[0], np.inf)
    alive = np.ones(raw.shape[0], bool)
    for i in range(raw.shape[1]):
        avg = beta * avg + (1.0 - beta) * raw[:, i]
        smoothed[:, i] = avg / (1.0 - beta ** (i + 1))
        best = np.minimum(best, smoothed[:, i])
        with np.errstate(invalid="ignore"):
            alive &= np.isfinite(smoothed[:, i]) & (smoothed[:, i] <= diverge_factor * best)
        valid[:, i] = alive
    return smoothed, valid


def range_test(
    step: Callable,
    init: Callable | Any,
    data: Any,
    *,
    members: Any = None,
    seeds: Sequence[int] = (0,),
    data_seeds: Sequence[int] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exponential",
    batch_size: int | None = None,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    hyperparameter: str = "learning_rate",
    loss: str = "loss",
    vectorize: bool = True,
) -> RangeTestResult:
    r"""Runs the LR range test on your own training step, for several runs at once, in one call.

    At step :math:`i` the update uses :math:`\eta_i = \eta_s (\eta_e / \eta_s)^{i / (N-1)}`
    (exponential) or :math:`\eta_s + (\eta_e - \eta_s)\, i / (N-1)` (linear). The recorded
    loss :math:`\ell_i` is smoothed with bias correction,

    .. math:: m_i = \beta m_{i-1} + (1 - \beta)\ell_i, \qquad \hat\ell_i = m_i / (1 - \beta^{i+1})

    and a run diverges at the first step where :math:`\hat\ell_i > c \min_{j \le i} \hat\ell_j`
    (or the loss is not finite); that point and all later ones are masked from suggestions.

    The step is the one you train with: a Flax ``TrainState`` step, an nnx step through
    :func:`lrjax.flax_steps.nnx_step`, any pure step ``step(state, batch, member) -> (state,
    metrics)``; its optimizer must keep the learning rate in its state
    (``optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)``),
    where the controller (:func:`lrjax.control`) writes the ramp before every update. The runs
    (one per seed) are members of one compiled program; nothing of yours is mutated: each run
    starts from ``init(member)`` and your objects are untouched afterwards, so there is nothing
    to restore (fastai's ``lr_find`` saves and reloads the model).

    Args:
      step: ``step(state, batch, member) -> (state, metrics)`` for one run; ``metrics[loss]``
        the batch's loss.
      init: ``init(member) -> state``, or a state itself (every run starts from it).
      data: a pytree of arrays (minibatches of ``batch_size``, each run in its own order), a
        function ``batch_fn(step)``, or an iterator of batches (see :func:`lrjax.fit`).
      members: the runs' settings ``{name: [R]}`` your ``step`` and ``init`` read; default
        ``{"seed": seeds}``.
      seeds: one run per seed, when ``members`` is not given.
      data_seeds: ``[R]`` each run's batch order for array data; default ``members["seed"]``
        where there is one, else one order for all.
      start_lr: :math:`\eta_s > 0`.
      end_lr: :math:`\eta_e > \eta_s`.
      num_steps: :math:`N \ge 2`.
      mode: ``"exponential"`` or ``"linear"``.
      batch_size: examples per step, for array data.
      beta: :math:`\beta \in [0, 1)`, the smoothing factor.
      diverge_factor: :math:`c > 1`.
      hyperparameter: the injected hyperparameter the ramp sets.
      loss: the name of the loss among the step's metrics.
      vectorize: False runs the members one by one (the debugging path, same results).

    Returns:
      A :class:`RangeTestResult`.

    Examples:
      >>> import jax, jax.numpy as jnp, numpy as np, optax
      >>> import lrjax
      >>> x = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
      >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
      >>> tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(0.0)
      >>> def init(member):
      ...     w = jax.random.normal(jax.random.key(member["seed"]), (3,))
      ...     return w, tx.init(w)
      >>> def step(state, batch, member):
      ...     w, opt_state = state
      ...     loss, g = jax.value_and_grad(lambda w: jnp.mean((batch[0] @ w - batch[1]) ** 2))(w)
      ...     updates, opt_state = tx.update(g, opt_state)
      ...     return (w + updates, opt_state), {"loss": loss}
      >>> found = lrjax.range_test(step, init, (x, y), seeds=(0, 1), start_lr=1e-4,
      ...                          end_lr=10.0, num_steps=60, batch_size=32)
      >>> found.loss.shape, [float(f"{lr:.3g}") for lr in found.learning_rates[[0, 30, -1]]]
      ((2, 60), [0.0001, 0.0349, 10.0])

    References:
      Smith, Cyclical Learning Rates for Training Neural Networks, arXiv:1506.01186, 2017;
      fastai ``Learner.lr_find``.
    """
    _checks.check_choice("mode", mode, _MODES)
    num_steps = _checks.check_int("num_steps", num_steps, 2)
    start_lr, end_lr = _lr_range(start_lr, end_lr)
    beta = _checks.check_float("beta", beta, 0, 1, open_max=True)
    diverge_factor = _checks.check_float("diverge_factor", diverge_factor, 1, open_min=True)
    _checks.check_bool("vectorize", vectorize)
    if not callable(step):
        raise ValueError(f"step must be a function step(state, batch, member), got {step!r}")
    if not callable(init):
        init = _Start(init)
    if members is None:
        members = {"seed": _seeds("seeds", seeds)}
    members = jax.tree.map(np.asarray, members)
    runs = engine.num_members(members)
    member_seeds = _member_seeds(members)
    if data_seeds is None:
        data_seeds = member_seeds
    order: Any = 0
    if data_seeds is not None:
        order = _seeds("data_seeds", data_seeds)
        if order.shape != (runs,):
            raise ValueError(f"data_seeds must hold one seed per run ({runs}), got {order.shape}")
        order = _Order(tuple(order.tolist()))
    feed = feeds.as_feed(data, batch_size, order)
    ramp = Ramp(start_lr, end_lr, num_steps, mode)
    program = _program(step, init, hyperparameter, ramp)
    out = loop.fit(program, members, feed, num_steps=num_steps, vectorize=vectorize)
    if loss not in out.metrics:
        raise ValueError(f"loss must name the step's loss metric, one of {sorted(out.metrics)}")
    raw = np.asarray(out.metrics[loss], np.float64)
    smoothed, valid = _smooth(raw, beta, diverge_factor)
    return RangeTestResult(
        learning_rates=np.asarray(out.metrics[f"hparams/{hyperparameter}"][0]),
        loss=raw.astype(np.float32),
        smoothed=smoothed.astype(np.float32),
        valid=valid,
        diverged_at=np.where(valid.all(axis=1), num_steps, np.argmin(valid, axis=1)),
        seeds=np.arange(runs) if member_seeds is None else np.asarray(member_seeds),
    )


def _member_seeds(members: Any) -> Any:
    """``members["seed"]`` (a dict) or ``members.seed`` (:class:`lrjax.supervised.Member`)."""
    if isinstance(members, Mapping):
        return members.get("seed")
    return getattr(members, "seed", None)


@dataclasses.dataclass(frozen=True)
class _Start:
    """``init`` for a state given as it is: every run starts from it."""

    state: Any

    def __call__(self, member: Any) -> Any:
        del member
        return self.state

    def __hash__(self) -> int:
        return id(self.state)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Start) and other.state is self.state


@_cache_by_fingerprint(maxsize=16)
def _program(step, init, hyperparameter, ramp) -> engine.Vectorized:
    """The range test's program, cached on what it computes (a repeated test compiles nothing)."""
    return engine.vectorize(*controller.control(step, init, {hyperparameter: ramp}))


def _seeds(name: str, seeds: Any) -> np.ndarray:
    arr = np.asarray(seeds).reshape(-1)
    if arr.size < 1:
        raise ValueError(f"{name} must hold at least one seed, got none")
    if not np.issubdtype(arr.dtype, np.integer) or (arr < -(2**31)).any() or (arr >= 2**31).any():
        raise ValueError(f"{name} must hold int32 integers, got {seeds!r}")
    return arr.astype(np.int32)


def model_range_test(
    model: Any,
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    data: tuple[Any, Any],
    *,
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
    optimizer_hparams: Mapping[str, Any] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exponential",
    batch_size: int = 64,
    seeds: Sequence[int] = (0,),
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    validation_data: tuple[Any, Any] | None = None,
) -> RangeTestResult:
    r"""The range test of a model and a per-example loss: :func:`range_test` on the supervised
    step (:class:`lrjax.Supervised`) of ``model``, ``loss`` and ``optimizer``.

    Any model the engine trains works: linen or nnx modules with batch statistics and dropout
    included.

    Args:
      model: a :class:`lrjax.Model`, an ``(init, apply)`` pair or a Flax module.
      loss: ``loss(outputs, targets) -> per-example losses``.
      data: ``(x, y)`` training arrays; each run draws its batches in its seed's order
        (:func:`lrjax.feeds.batch_indices`).
      optimizer: an optax optimizer factory taking ``learning_rate``.
      optimizer_hparams: other hyperparameters of ``optimizer``; a value with one entry per
        run (shape ``(R,)``) differs between runs, so optimizers settings are vectorized too.
      start_lr, end_lr, num_steps, mode, beta, diverge_factor: as for :func:`range_test`.
      batch_size: examples per step, in ``[1, len(x)]``.
      seeds: one run per seed (parameter initialisation, dropout and batch order).
      validation_data: if given, ``(x, y)`` of a held-out batch whose loss after each update
        (evaluation mode) is recorded instead of the training loss.

    Returns:
      A :class:`RangeTestResult`.
    """
    x, y = (np.asarray(a) for a in data)
    if len(x) != len(y):
        raise ValueError(f"data must hold as many inputs as targets, got {len(x)} and {len(y)}")
    batch_size = _checks.check_int("batch_size", batch_size, 1, len(x))
    seeds = _seeds("seeds", seeds)
    runs = seeds.size
    hparams = {}
    for name, value in (optimizer_hparams or {}).items():
        value = np.asarray(value, np.float32)
        if value.shape not in ((), (runs,)):
            raise ValueError(
                f"optimizer_hparams[{name!r}] must be a scalar or have one entry per seed "
                f"({runs}), got shape {value.shape}"
            )
        hparams[name] = np.broadcast_to(value, (runs,))
    model = supervised.as_model(model, x[:batch_size])
    task = supervised.Supervised(model, loss, optimizer, _FixedKwargs())
    step = task.step
    if validation_data is not None:
        validation = tuple(jnp.asarray(a) for a in validation_data)
        step = _with_validation_loss(step, task, validation)
    members = supervised.Member(
        hparams=hparams,
        seed=seeds,
        data_seed=seeds,
        batch_size=np.full(runs, batch_size, np.int32),
    )
    return range_test(
        step, task.init, (x, y), members=members, data_seeds=seeds, start_lr=start_lr,
        end_lr=end_lr, num_steps=num_steps, mode=mode, batch_size=batch_size, beta=beta,
        diverge_factor=diverge_factor,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The parallel test.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParallelRangeTestResult:
    """Evaluation after a short fixed budget for each learning rate of a grid, per seed.

    Attributes:
      learning_rates: ``(K,)`` the grid.
      final_loss: ``(S, K)`` evaluation loss after the budget (``nan`` where a run diverged).
      final_metrics: ``{name: (S, K)}`` every evaluation metric after the budget.
      diverged: ``(S, K)`` runs frozen by the engine's divergence test.
      seeds: ``(S,)``.
      sweep: the underlying :class:`lrjax.sweep.SweepResult` (members seed-major,
        ``k = s * K + l``).
    """

    learning_rates: np.ndarray
    final_loss: np.ndarray
    final_metrics: dict[str, np.ndarray]
    diverged: np.ndarray
    seeds: np.ndarray
    sweep: sweep.SweepResult

    def suggestion(self) -> float:
        """The LR with the lowest mean final loss among those where no seed diverged."""
        ok = ~self.diverged.any(axis=0) & np.isfinite(self.final_loss).all(axis=0)
        if not ok.any():
            raise ValueError("every learning rate diverged for some seed; lower end_lr")
        mean = np.full(ok.shape, np.inf)
        mean[ok] = self.final_loss[:, ok].mean(axis=0)
        return float(self.learning_rates[int(np.argmin(mean))])


@dataclasses.dataclass(frozen=True)
class _ConstantLearningRate:
    """``optimizer_kwargs`` of the parallel test; equal settings compare (and hash) equal, so a
    repeated test reuses the engine's compiled programs, which are cached on this object."""

    fixed: tuple[tuple[str, Any], ...]

    def __call__(self, hparams: Mapping[str, jax.Array]) -> dict[str, Any]:
        return {"learning_rate": hparams["learning_rate"], **dict(self.fixed)}


def parallel_range_test(
    model: Any,
    loss: Callable[[jax.Array, jax.Array], jax.Array],
    data: tuple[Any, Any],
    eval_data: tuple[Any, Any],
    *,
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
    optimizer_hparams: Mapping[str, Any] | None = None,
    start_lr: float = 1e-5,
    end_lr: float = 1.0,
    num_lrs: int = 16,
    learning_rates: Sequence[float] | None = None,
    num_steps: int = 100,
    batch_size: int = 64,
    seeds: Sequence[int] = (0,),
    metrics: Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]] | None = None,
    **train_kwargs: Any,
) -> ParallelRangeTestResult:
    r"""Trains every LR of a log grid for a short budget, all in ONE vectorized run.

    The grid is :math:`\eta_k = \eta_s (\eta_e / \eta_s)^{k / (K - 1)}` (or the given
    ``learning_rates``). Each (seed, LR) pair is a member of one :func:`lrjax.sweep.train`
    program with a constant learning rate; each seed has its own initialisation and batch order.
    The curve of evaluation loss after ``num_steps`` against LR answers the question the classic
    test only approximates, which constant LR trains best for this budget, because no LR is
    judged on parameters that earlier, smaller LRs produced.

    Args:
      model: as for :func:`lrjax.sweep.train`.
      loss: ``loss(outputs, targets) -> per-example losses``; also the ``"loss"`` metric.
      data: ``(x, y)`` training arrays.
      eval_data: ``(x, y)`` held-out arrays scored after the budget.
      optimizer: an optax optimizer factory taking ``learning_rate``.
      optimizer_hparams: other (shared) keyword arguments of ``optimizer``.
      start_lr: :math:`\eta_s > 0`.
      end_lr: :math:`\eta_e > \eta_s`.
      num_lrs: :math:`K \ge 2`.
      learning_rates: an explicit increasing grid instead of ``start_lr``/``end_lr``/``num_lrs``.
      num_steps: the training budget of every member.
      batch_size: examples per step.
      seeds: one repetition of the grid per seed.
      metrics: extra evaluation metrics ``{name: fn(outputs, targets) -> per-example}``.
      **train_kwargs: passed to :func:`lrjax.sweep.train` (``divergence_factor``,
        ``options``, ...).

    Returns:
      A :class:`ParallelRangeTestResult`.
    """
    if learning_rates is None:
        start_lr, end_lr = _lr_range(start_lr, end_lr)
        num_lrs = _checks.check_int("num_lrs", num_lrs, 2)
        learning_rates = np.geomspace(start_lr, end_lr, num_lrs)
    lrs = np.asarray(learning_rates, np.float32).reshape(-1)
    if (
        lrs.size < 2
        or not np.all(lrs > 0)
        or not np.all(np.isfinite(lrs))
        or np.any(np.diff(lrs) <= 0)
    ):
        raise ValueError(f"learning_rates must be > 0, increasing, with >= 2 entries, got {lrs}")
    seeds = np.asarray(seeds, np.int32).reshape(-1)
    if seeds.size < 1:
        raise ValueError("seeds must hold at least one seed, got none")
    member_seeds = np.repeat(seeds, lrs.size)
    result = sweep.train(
        model,
        loss,
        data,
        optimizer=optimizer,
        hparams={"learning_rate": np.tile(lrs, seeds.size)},
        optimizer_kwargs=_ConstantLearningRate(tuple(sorted((optimizer_hparams or {}).items()))),
        num_steps=num_steps,
        batch_size=batch_size,
        seeds=member_seeds,
        data_seeds=member_seeds,
        evaluation=sweep.Evaluation(eval_data, metrics={"loss": loss, **(metrics or {})}),
        **train_kwargs,
    )
    shape = (seeds.size, lrs.size)
    diverged = result.diverged.reshape(shape)
    final = {name: v[:, -1].reshape(shape) for name, v in result.eval_metrics.items()}
    return ParallelRangeTestResult(
        learning_rates=lrs,
        final_loss=np.where(diverged, np.nan, final["loss"]),
        final_metrics=final,
        diverged=diverged,
        seeds=seeds,
        sweep=result,
    )
