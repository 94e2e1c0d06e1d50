"""Population-based training (PBT) between chunks: exploit a better member, explore around it.

Every ``ready`` steps the members of a population are ranked on a metric (an evaluated metric,
e.g. validation accuracy). Each member of the bottom ``fraction``, and every member that
diverged, continues from a copy of a member drawn from the top ``fraction`` (**exploit**): its
whole state (parameters, optimizer state, batch statistics, trackers, the controller's knobs)
is a gather along the member axis, compiled and run on the devices, so sharded members exchange
across devices. It then perturbs the copied hyperparameters (**explore**):

.. math:: h' = \\mathrm{clip}(h \\cdot f,\\; lo,\\; hi), \\quad f \\sim U\\{0.8, 1.2\\},
          \\qquad \\text{or, with probability } p_r,\\quad
          h' \\sim \\mathrm{LogUniform}(lo, hi)

(uniform instead of log-uniform for a :class:`Range` with ``log=False``). :math:`h` is the
donor's value, :math:`[lo, hi]` the hyperparameter's :class:`Range`.

The algorithm is a pure function of an explicit state, evosax-style: :func:`exploit_explore`
decides (scores, divergence and current values in; whose state each member continues from and
its new values out) and :func:`record` appends the decision to the :class:`Lineage`. The
:class:`PBT` hook is a thin adapter: it reads the scores from the loop (its evaluations, or its
training metrics), gathers the states, and writes the explored values through the controller
(:func:`lrjax.control`): each explored name must be a hyperparameter the controller sets (an
``optax.inject_hyperparams`` hyperparameter, or a member setting such as the peak of a
schedule), and PBT turns its knob's ``override``. The knobs are inputs of the compiled chunk,
so exploring never recompiles.

The lineage (``parents[k, e]``: whose state member ``k`` continued from at event ``e``) and the
value of every explored hyperparameter in every segment between events give, with
:meth:`PBT.schedule`, the schedule the surviving line of a member actually followed, and
:func:`replay` turns it into a plain schedule for a clean single re-run
(``optax.sgd(lrjax.replay(result, k))``). Members trained in several groups
(``fit(group_size=...)``) exploit each other as if in one; ``burn_in`` delays the first event.
The random draws are a function of ``(seed, step)`` only, so a run is deterministic given the
seed and a run resumed from a :class:`lrjax.hooks.Checkpoint` (which keeps the lineage) equals
an uninterrupted one bit for bit.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> import lrjax
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)
  >>> def init(member):
  ...     return jnp.zeros(3), tx.init(jnp.zeros(3))
  >>> def step(state, batch, member):
  ...     params, opt_state = state
  ...     xb, yb = batch
  ...     loss, g = jax.value_and_grad(lambda p: jnp.mean((xb @ p - yb) ** 2))(params)
  ...     updates, opt_state = tx.update(g, opt_state)
  ...     return (params + updates, opt_state), {"loss": loss}
  >>> step, init = lrjax.control(step, init, {"learning_rate": lambda member: member["lr"]})
  >>> def evaluate(state, member, data):
  ...     return {"loss": jnp.mean((data[0] @ lrjax.unwrap(state)[0] - data[1]) ** 2)}
  >>> pbt = lrjax.PBT({"learning_rate": lrjax.Range(1e-3, 0.5)}, metric="loss", mode="min",
  ...                 ready=10, seed=0)
  >>> out = lrjax.fit(lrjax.vectorize(step, init), {"lr": np.geomspace(1e-3, 0.3, 4)}, (x, y),
  ...                 num_steps=40, chunk_steps=10, batch_size=16,
  ...                 hooks=[lrjax.hooks.Evaluate(evaluate, (x, y)), pbt])
  >>> pbt.steps.tolist(), pbt.parents.shape, pbt.values["learning_rate"].shape
  ([0, 10, 20, 30], (4, 3), (4, 4))

References:
  Jaderberg et al., Population Based Training of Neural Networks, arXiv:1711.09846, 2017;
  Lange, evosax: JAX-based Evolution Strategies, arXiv:2212.04180, 2022 (ask/tell with an
  explicit state).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, engine
from lrjax.schedules import piecewise_constant

__all__ = [
    "PBT",
    "Lineage",
    "Range",
    "ancestry",
    "exploit_explore",
    "lineage_schedule",
    "record",
    "replay",
    "start",
]

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Range:
    """The bounds of one explored hyperparameter: ``low <= h <= high``.

    Attributes:
      low: the lower bound (``> 0`` when ``log``).
      high: the upper bound, ``> low``.
      log: resample log-uniformly (learning rates, weight decays); False: uniformly
        (momentum).
    """

    low: float
    high: float
    log: bool = True

    def __post_init__(self):
        low = _checks.check_float("Range.low", self.low, 0.0 if self.log else None,
                                  open_min=self.log)  # fmt: skip
        _checks.check_float("Range.high", self.high, low, open_min=True)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


def ancestry(parents: Any, k: int) -> np.ndarray:
    """The slots that trained the line of member ``k``, one per segment ``[E + 1]``.

    ``parents[j, e]`` is whose state member ``j`` continued from at event ``e``; following it
    back from ``k`` at the end gives, for each segment, the member whose slot held the
    parameters that became member ``k``'s.

    Examples:
      >>> ancestry(np.array([[0, 0], [0, 1], [2, 1]]), 2).tolist()  # 2 copied 1, 1 copied 0
      [0, 1, 2]
    """
    parents = np.asarray(parents)
    e = parents.shape[1]
    slots = np.empty(e + 1, np.int64)
    slots[e] = slot = int(k)
    for j in range(e - 1, -1, -1):
        slots[j] = slot = int(parents[slot, j])
    return slots


def lineage_schedule(steps: Any, parents: Any, values: Any, k: int, num_steps: int) -> np.ndarray:
    """``[num_steps]`` a hyperparameter at every step along the line of member ``k``.

    Args:
      steps: ``[E + 1]`` the first step of each segment (0, then each event).
      parents: ``[K, E]`` (see :func:`ancestry`).
      values: ``[K, E + 1]`` the hyperparameter of each member in each segment.
      k: the final member.
      num_steps: the length of the run.

    Examples:
      >>> lineage_schedule([0, 2], [[0], [0]], [[1.0, 0.8], [0.1, 1.2]], 1, 4).tolist()
      [1.0, 1.0, 1.2000000476837158, 1.2000000476837158]
    """
    values = np.asarray(values, np.float32)
    bounds = [*np.asarray(steps).tolist(), num_steps]
    out = np.empty(num_steps, np.float32)
    for j, slot in enumerate(ancestry(parents, k)):
        out[bounds[j] : bounds[j + 1]] = values[slot, j]
    return out


def replay(lineage: Any, k: int, name: str | None = None) -> optax.Schedule:
    """The schedule PBT discovered for member ``k``, as a plain schedule for a clean re-run.

    .. math:: \\eta_t = v_{a_j, j} \\quad\\text{for}\\quad s_j \\le t < s_{j+1}

    where :math:`s_j` is the first step of segment :math:`j` (0, then each event),
    :math:`a_j` the slot that trained member ``k``'s line in it (:func:`ancestry`) and
    :math:`v` the lineage's values of ``name``: piecewise constant over the exploit intervals,
    a :func:`lrjax.piecewise_constant` at boundaries :math:`s_j - 1` (its ``t > b``
    convention). It equals the ``hparams/<name>`` the controller logged along the line (the
    slot :math:`a_j` at each step :math:`t` of segment :math:`j`) where each member's rule is a
    constant (a per-member value, as PBT's own overrides are) and no other controller scales
    ``name``; a rule that is itself a schedule is followed only until the member's first
    exploit, which a piecewise-constant schedule cannot hold.

    Args:
      lineage: a :class:`Lineage`, a :class:`PBT` hook, or a :func:`lrjax.fit` result whose
        hooks hold one.
      k: the member, in ``[0, K)``.
      name: the explored hyperparameter; may be omitted when PBT explored only one.

    Returns:
      ``schedule(step) -> value``, an ``optax.Schedule`` (jit- and vmap-safe).

    Examples:
      >>> lineage = Lineage(steps=np.array([0, 10]), parents=np.array([[0], [0]]),
      ...                   scores=np.zeros((2, 1), np.float32),
      ...                   values={"lr": np.array([[0.1, 0.1], [0.01, 0.12]], np.float32)})
      >>> schedule = replay(lineage, 1)  # member 1 copied member 0 at step 10
      >>> [round(float(schedule(t)), 4) for t in (0, 9, 10, 50)]
      [0.1, 0.1, 0.12, 0.12]
    """
    lineage = _as_lineage(lineage)
    names = sorted(lineage.values)
    if name is None and len(names) == 1:
        name = names[0]
    if name not in lineage.values:
        raise ValueError(f"name must be one of the explored {names}, got {name!r}")
    num = lineage.parents.shape[0]
    k = _checks.check_int("k", k, 0, num - 1)
    slots = ancestry(lineage.parents, k)
    values = np.asarray(lineage.values[name], np.float32)[slots, np.arange(len(slots))]
    boundaries = [int(s) - 1 for s in np.asarray(lineage.steps)[1:]]
    return piecewise_constant(boundaries, jnp.asarray(values))


def _as_lineage(lineage: Any) -> Lineage:
    if isinstance(lineage, Lineage):
        return lineage
    if isinstance(lineage, PBT):
        return lineage.lineage
    loop = getattr(lineage, "loop", None)
    found = [h for h in getattr(loop, "hooks", ()) if isinstance(h, PBT)]
    if len(found) == 1:
        return found[0].lineage
    raise ValueError(
        "lineage must be an lrjax.pbt.Lineage, an lrjax.PBT hook or a fit result with one PBT "
        f"hook, got {type(lineage).__name__}"
        + (f" with {len(found)} PBT hooks" if loop is not None else "")
    )


class Lineage(NamedTuple):
    """PBT's record: the explicit state :func:`record` advances (host arrays over the ``K``
    members and ``E`` events).

    Attributes:
      steps: ``[E + 1]`` the first step of each segment (0, then each event).
      parents: ``[K, E]`` whose state member ``k`` continued from at each event (``k`` when it
        kept its own).
      scores: ``[K, E]`` the ranking metric at each event.
      values: ``{name: [K, E + 1]}`` each explored hyperparameter in each segment.
    """

    steps: np.ndarray
    parents: np.ndarray
    scores: np.ndarray
    values: dict[str, np.ndarray]


def start(values: Mapping[str, Any], step: int = 0) -> Lineage:
    """The lineage of a population whose hyperparameters are ``values`` (``{name: [K]}``) at
    ``step``, before any event."""
    k = len(next(iter(values.values())))
    return Lineage(
        steps=np.asarray([step], np.int64),
        parents=np.zeros((k, 0), np.int64),
        scores=np.zeros((k, 0), np.float32),
        values={n: np.asarray(v, np.float32).reshape(k, 1) for n, v in values.items()},
    )


def exploit_explore(
    scores: Any,
    diverged: Any,
    values: Mapping[str, Any],
    *,
    space: Mapping[str, Range],
    step: int,
    seed: int = 0,
    mode: str = "max",
    fraction: float = 0.25,
    resample_probability: float = 0.25,
    factors: Sequence[float] = (0.8, 1.2),
    population: Any = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One PBT event, a pure function: who copies whom, and the explored values.

    In each population (members sharing a ``population`` label; ``-1`` stays out), the members
    ranked in the bottom ``fraction`` by ``scores`` (``mode`` ``"max"``: higher is better), and
    every diverged member, take the state of a member drawn uniformly from the top ``fraction``
    that has not diverged; for each name of ``space`` (in sorted order) the copied value is
    redrawn from its :class:`Range` with probability ``resample_probability``, else multiplied
    by a factor drawn from ``factors``, then clipped to the range. Ties keep the members' order.
    The draws come from ``numpy.random.default_rng([seed, step])``.

    Args:
      scores: ``[K]`` the ranking metric.
      diverged: ``[K]`` bool: always replaced, never copied.
      values: ``{name: [K]}`` each member's current value of every name of ``space``.
      space: ``{name: Range}`` the explored hyperparameters.
      step: the step of the event (part of the draws' seed).
      seed: the draws' seed, ``>= 0``.
      mode: ``"max"`` or ``"min"``.
      fraction: the bottom and top fraction, in ``(0, 0.5]`` (at least one member each).
      resample_probability: in ``[0, 1]``.
      factors: the perturbation factors.
      population: ``[K]`` int labels, or None for one population of all.

    Returns:
      ``(source, new_values)``: ``source[k]`` whose state member ``k`` continues from (``k``
      itself when it keeps its own), and ``{name: [K]}`` float32 values (the explored value
      where replaced, the current one elsewhere).

    Examples:
      >>> import numpy as np
      >>> source, new = exploit_explore(
      ...     np.array([0.9, 0.1, 0.5, 0.7]), np.zeros(4, bool), {"lr": np.full(4, 0.1)},
      ...     space={"lr": Range(1e-3, 1.0)}, step=10, fraction=0.25)
      >>> source.tolist(), bool(new["lr"][1] != 0.1)
      ([0, 0, 2, 3], True)
    """
    scores = np.asarray(scores, np.float64)
    diverged = np.asarray(diverged, bool)
    k = scores.shape[0]
    current = {n: np.asarray(values[n], np.float32) for n in sorted(space)}
    new = {n: v.copy() for n, v in current.items()}
    source = np.arange(k)
    rng = np.random.default_rng([seed, step])
    population = np.zeros(k, np.int64) if population is None else np.asarray(population)[:k]
    for p in np.unique(population[population >= 0]):
        idx = np.flatnonzero(population == p)
        if len(idx) < 2:
            continue
        n = max(1, math.floor(fraction * len(idx)))
        key = np.where(diverged[idx], -np.inf, scores[idx] * (1 if mode == "max" else -1))
        order = idx[np.argsort(-key, kind="stable")]
        top = [int(i) for i in order[:n] if not diverged[i]]
        if not top:
            continue  # every member diverged: nobody to copy
        bottom = set(order[-n:].tolist()) | set(idx[diverged[idx]].tolist())
        for member in sorted(bottom - set(top)):
            donor = top[int(rng.integers(len(top)))]
            source[member] = donor
            for name in current:
                new[name][member] = _explore(
                    space[name], float(current[name][donor]), rng, resample_probability, factors
                )
    return source, new


def _explore(r: Range, value: float, rng, resample_probability, factors) -> np.float32:
    if rng.uniform() < resample_probability:
        value = r.sample(rng)
    else:
        value = value * factors[int(rng.integers(len(factors)))]
    return np.float32(min(max(value, r.low), r.high))


def record(
    lineage: Lineage, step: int, source: Any, scores: Any, values: Mapping[str, Any]
) -> Lineage:
    """The lineage after an event at ``step`` (a pure function): the parents, the scores, and
    each name's value in the new segment (``values``, as :func:`exploit_explore` returns)."""
    return Lineage(
        steps=np.append(lineage.steps, np.int64(step)),
        parents=np.concatenate([lineage.parents, np.asarray(source, np.int64)[:, None]], 1),
        scores=np.concatenate([lineage.scores, np.asarray(scores, np.float32)[:, None]], 1),
        values={
            n: np.concatenate([v, np.asarray(values[n], np.float32)[:, None]], 1)
            for n, v in lineage.values.items()
        },
    )


@functools.lru_cache(maxsize=32)
def _gather_program(program: engine.Vectorized | None, num_groups: int) -> Callable:
    """``(group states) -> (group states)`` where slot ``i`` of the members laid end to end takes
    slot ``source[i]``: one gather over every group's members (a member copies a member of
    another group), compiled once per state shape, sharded like ``program``'s state (the gather
    crosses devices)."""

    def gather(states, source):
        whole = jax.tree.map(lambda *a: jnp.concatenate(a) if len(a) > 1 else a[0], *states)
        picked = jax.tree.map(lambda a: a[source], whole)
        size = source.shape[0] // num_groups
        return tuple(
            jax.tree.map(lambda a, g=g: a[g * size : (g + 1) * size], picked)
            for g in range(num_groups)
        )

    if program is None:  # the sequential (debugging) path: host arrays, nothing to donate
        return jax.jit(gather)
    kwargs: dict[str, Any] = {"donate_argnums": (0,)}
    if program.mesh is not None:
        states = (program.sharding(0),) * num_groups
        kwargs.update(in_shardings=(states, program.sharding(None)), out_shardings=states)
    return jax.jit(gather, **kwargs)


class PBT:
    """Population-based training as a hook of :func:`lrjax.fit` (see the module docstring).

    Args:
      space: ``{name: Range}`` the explored hyperparameters (a ``(low, high)`` pair is a
        log-scale :class:`Range`); each must be set by the step's :func:`lrjax.control` layer.
      metric: the ranking metric: the name of an evaluated metric (recorded in the loop by an
        :class:`lrjax.hooks.Evaluate` hook placed before this one), else of the step's training
        metrics (averaged over the last chunk); or ``metric(loop, group) -> [group.size]``.
      mode: ``"max"`` (accuracy) or ``"min"`` (loss).
      ready: steps between exploit/explore events, ``>= 1``; events happen after the first
        chunk that ends at least ``ready`` steps after the last one, never after the last step
        (make ``chunk_steps`` divide ``ready``).
      burn_in: no event before this step, ``>= 0`` and below the run's ``num_steps`` (the
        members first train undisturbed; the first event is at the first chunk end at or after
        ``max(burn_in, ready)``).
      fraction: the bottom and top fraction of each population, in ``(0, 0.5]`` (at least one
        member each).
      resample_probability: the probability of drawing a hyperparameter afresh from its
        range instead of perturbing the donor's value, in ``[0, 1]``.
      factors: the perturbation factors, drawn uniformly (default ``(0.8, 1.2)``, as in the
        paper).
      seed: a non-negative int; the draws at step ``t`` come from ``(seed, t)``.
      population: ``[K]`` ints: members exchange only within their population (e.g. one per
        seed, several independent PBT runs in one program); ``-1`` keeps a member out of PBT.
        Default: one population of all members.
      loss: the training metric whose non-finite value at the end of a chunk marks a diverged
        member (as does a frozen :func:`lrjax.freeze_on_divergence` state or a non-finite
        ranking metric); a diverged member is always replaced and never copied.

    After (or during) a run, ``lineage`` (a :class:`Lineage`) and its fields as attributes:
    ``steps``, ``values``, ``parents``, ``scores``.

    Members in several groups (``fit(group_size=...)``) exploit each other: the event runs
    after the last group's chunk, ranks all members of all groups, and copies states between
    groups through the loop, so the decisions are those of the same members in one group.
    """

    name = "pbt"

    def __init__(
        self,
        space: Mapping[str, Range | tuple[float, float]],
        *,
        metric: str | Callable[[Any, Any], Any],
        mode: str = "max",
        ready: int,
        fraction: float = 0.25,
        resample_probability: float = 0.25,
        factors: Sequence[float] = (0.8, 1.2),
        seed: int = 0,
        population: Any = None,
        loss: str = "loss",
        burn_in: int = 0,
    ):
        if not isinstance(space, Mapping) or not space:
            raise ValueError(f"space must be a non-empty dict {{name: Range}}, got {space!r}")
        self.space = {}
        for name, r in space.items():
            if isinstance(r, tuple) and len(r) == 2:
                r = Range(*r)
            if not isinstance(r, Range):
                raise ValueError(f"space[{name!r}] must be an lrjax.Range, got {r!r}")
            self.space[str(name)] = r
        self.names = tuple(sorted(self.space))
        if not (isinstance(metric, str) or callable(metric)):
            raise ValueError(f"metric must be a metric name or a function, got {metric!r}")
        self.metric = metric
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.mode = mode
        self.ready = _checks.check_int("ready", ready, 1)
        self.burn_in = _checks.check_int("burn_in", burn_in, 0)
        self.fraction = _checks.check_float("fraction", fraction, 0.0, 0.5, open_min=True)
        self.resample_probability = _checks.check_float(
            "resample_probability", resample_probability, 0.0, 1.0
        )
        self.factors = tuple(
            _checks.check_float(f"factors[{i}]", f, 0.0, open_min=True)
            for i, f in enumerate(factors)
        )
        if not self.factors:
            raise ValueError("factors must hold at least one factor, got none")
        self.seed = _checks.check_int("seed", seed, 0, 2**63 - 1)
        self.population = None if population is None else np.asarray(population)
        if self.population is not None and (
            self.population.ndim != 1 or not np.issubdtype(self.population.dtype, np.integer)
        ):
            raise ValueError(f"population must be [K] ints, got {population!r}")
        self.loss = loss
        self.lineage = start({n: np.zeros((0,), np.float32) for n in self.names})
        self._restored = False

    def __repr__(self) -> str:
        # Every argument: a checkpoint's identity describes the hook by its repr.
        return (
            f"PBT(space={self.space}, metric={self.metric!r}, mode={self.mode!r}, "
            f"ready={self.ready}, fraction={self.fraction}, resample_probability="
            f"{self.resample_probability}, factors={self.factors}, seed={self.seed}, population="
            f"{None if self.population is None else self.population.tolist()}, loss={self.loss!r}, "
            f"burn_in={self.burn_in})"
        )

    # -- the records, as attributes -------------------------------------------------------------

    @property
    def steps(self) -> np.ndarray:
        return self.lineage.steps

    @property
    def parents(self) -> np.ndarray:
        return self.lineage.parents

    @property
    def scores(self) -> np.ndarray:
        return self.lineage.scores

    @property
    def values(self) -> dict[str, np.ndarray]:
        return self.lineage.values

    # -- the hook protocol --------------------------------------------------------------------

    def on_start(self, loop) -> None:
        if self.burn_in >= loop.num_steps:
            raise ValueError(
                f"burn_in must be below the run's num_steps={loop.num_steps} (no event would "
                f"ever happen), got {self.burn_in}"
            )
        k = loop.num_members
        if self.population is not None and self.population.shape != (k,):
            raise ValueError(
                f"population must hold one int per member, [K={k}], got shape "
                f"{self.population.shape}"
            )
        group = loop.groups[0]
        knobs = loop.control(group)
        for name in self.names:
            if name not in knobs:
                raise ValueError(
                    f"space[{name!r}] is not a hyperparameter the step's controller sets (it "
                    f"sets {sorted(knobs)}): wrap the step with lrjax.control(step, init, "
                    f"{{{name!r}: rule}}), naming an optax.inject_hyperparams hyperparameter or "
                    "a member setting"
                )
        if not self._restored:
            self.lineage = start(self._everyone(loop, lambda g: self._read(loop, g)), loop.step)
        self._restored = False

    def after_chunk(self, loop, group) -> None:
        if group.index != len(loop.groups) - 1:
            return  # every group finishes the chunk first: members exchange across groups
        if loop.step >= loop.num_steps or loop.step < self.burn_in:
            return
        if loop.step - int(self.steps[-1]) < self.ready:
            return
        scores = self._everyone(loop, lambda g: self._scores(loop, g))
        diverged = self._everyone(loop, loop.diverged) | ~np.isfinite(scores)
        losses = (loop.metrics or {}).get(self.loss)
        if losses is not None:
            diverged |= ~np.isfinite(losses[:, loop.step - 1].astype(np.float64))
        current = self._everyone(loop, lambda g: self._read(loop, g))
        source, new = exploit_explore(
            scores, diverged, current, space=self.space, step=loop.step, seed=self.seed,
            mode=self.mode, fraction=self.fraction,
            resample_probability=self.resample_probability, factors=self.factors,
            population=self.population,
        )  # fmt: skip
        self._exchange(loop, source, new)
        self.lineage = record(self.lineage, loop.step, source, scores, new)

    @staticmethod
    def _everyone(loop, read: Callable) -> Any:
        """``read(group)`` (an array, or a dict of arrays, ``[group.size]``) of the real
        members of every group, laid end to end: ``[K]`` in member order."""
        parts = [read(group) for group in loop.groups]
        if isinstance(parts[0], dict):
            return {n: np.concatenate([p[n][: g.real] for p, g in zip(parts, loop.groups,
                                                                    strict=True)])
                    for n in parts[0]}  # fmt: skip
        return np.concatenate([p[: g.real] for p, g in zip(parts, loop.groups, strict=True)])

    def state_dict(self) -> dict:
        return dict(self.lineage._asdict())

    def load_state_dict(self, state: Mapping) -> None:
        if "steps" not in state:  # nothing saved yet
            return
        steps = np.asarray(state["steps"], np.int64)
        e = len(steps) - 1
        values = state.get("values", {})
        k = len(np.asarray(values[self.names[0]]))
        # Zero-size arrays are not saved (before the first event).
        self.lineage = Lineage(
            steps=steps,
            parents=np.asarray(state.get("parents", np.zeros((k, 0))), np.int64).reshape(k, e),
            scores=np.asarray(state.get("scores", np.zeros((k, 0))), np.float32).reshape(k, e),
            values={n: np.asarray(values[n], np.float32).reshape(k, e + 1) for n in self.names},
        )
        self._restored = True

    # -- reading the records ------------------------------------------------------------------

    def ancestry(self, k: int) -> np.ndarray:
        """``[E + 1]`` the member whose slot trained the line of member ``k`` in each segment
        (see :func:`ancestry`)."""
        return ancestry(self.parents, k)

    def schedule(self, name: str, k: int, num_steps: int) -> np.ndarray:
        """``[num_steps]`` the value of ``name`` at each step along the line of member ``k``:
        the schedule the final member ``k`` actually followed (see :func:`lineage_schedule`)."""
        if name not in self.values:
            raise ValueError(f"name must be one of the explored {list(self.names)}, got {name!r}")
        return lineage_schedule(self.steps, self.parents, self.values[name], k, num_steps)

    # -- the adapter ----------------------------------------------------------------------------

    def _read(self, loop, group) -> dict[str, np.ndarray]:
        """Every member's current value of each explored hyperparameter ``[size]``: the value
        its rule (or an earlier override) gave at the last step, before any scale."""
        knobs = loop.control(group)
        return {n: np.asarray(knobs[n].value, np.float32).reshape(group.size) for n in self.names}

    def _scores(self, loop, group) -> np.ndarray:
        if callable(self.metric):
            values = np.asarray(self.metric(loop, group), np.float64)
        else:
            evaluated = loop.evaluation(group)
            if self.metric in evaluated:
                values = np.asarray(evaluated[self.metric], np.float64)
            else:
                metrics = loop.group_metrics(group)
                if self.metric not in metrics:
                    raise ValueError(
                        f"the PBT metric {self.metric!r} is neither evaluated "
                        f"{sorted(evaluated)} nor a training metric {sorted(metrics)}"
                    )
                window = metrics[self.metric][:, loop.step - loop.last_chunk : loop.step]
                values = np.mean(window.astype(np.float64), axis=1)  # nan if any step was nan
        if values.shape[0] < group.real:
            raise ValueError(f"metric must give one value per member, got shape {values.shape}")
        return values

    def _exchange(self, loop, source: np.ndarray, new: Mapping[str, np.ndarray]) -> None:
        k = len(source)
        if (source == np.arange(k)).all():
            return  # nothing moves: the state stays bit-identical
        # Group g holds members g * size .. g * size + real - 1 (only the last group pads), so a
        # member's index is its slot among the groups' slots laid end to end.
        groups = loop.groups
        full = np.arange(len(groups) * groups[0].size)
        full[:k] = source
        program = _gather_program(loop.program if loop.vectorize else None, len(groups))
        states = program(tuple(g.state for g in groups), loop.put(np.asarray(full, np.int32), None))
        for group, state in zip(groups, states, strict=True):
            if not loop.vectorize:
                state = jax.tree.map(lambda a: a if engine.is_key(a) else np.asarray(a), state)
            group.state = state
            real, members = group.real, slice(group.start, group.start + group.real)
            replaced = np.zeros(group.size, bool)
            replaced[:real] = source[members] != np.arange(k)[members]
            knobs = loop.control(group)  # the donors' knobs, copied with their states
            for name in self.names:
                value = np.zeros(group.size, np.float32)
                value[:real] = new[name][members]
                kept = np.where(knobs[name].overridden, knobs[name].override, np.nan)
                override = np.where(replaced, value, kept)
                loop.set_control(group, name, override=override)
