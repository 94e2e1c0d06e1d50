"""Population-based training (PBT) between chunks: exploit a better member, explore around it.

Every ``ready`` steps the members of a population are ranked on a metric (an evaluated metric,
e.g. validation accuracy). Each member of the bottom ``fraction``, and every member that
diverged, continues from a copy of a member drawn from the top ``fraction`` (**exploit**): its
whole state (parameters, optimizer state, batch statistics, trackers) is a gather along the
member axis, compiled and run on the devices, so sharded members exchange across devices. It
then perturbs the copied hyperparameters (**explore**):

.. math:: h' = \\mathrm{clip}(h \\cdot f,\\; lo,\\; hi), \\quad f \\sim U\\{0.8, 1.2\\},
          \\qquad \\text{or, with probability } p_r,\\quad
          h' \\sim \\mathrm{LogUniform}(lo, hi)

(uniform instead of log-uniform for a :class:`Range` with ``log=False``). :math:`h` is the
donor's value, :math:`[lo, hi]` the hyperparameter's :class:`Range`.

Hyperparameters live where the step reads them, and both places are inputs of the compiled
chunk, so exploring never recompiles:

* numeric hyperparameters of an ``optax.inject_hyperparams`` optimizer live in the optimizer
  state (``opt_state.hyperparams[name]``), found anywhere in the member's state;
* any other setting lives in the member settings: ``members[name]`` (a dict) or
  ``members.hparams[name]`` (a :class:`lrjax.supervised.Member`, e.g. the peak of a schedule
  built in the step). A name found in both places is written to both.

The hook records the lineage (``parents[k, e]``: whose state member ``k`` continued from at
event ``e``) and the value of every explored hyperparameter in every segment between events,
so :meth:`PBT.schedule` gives the schedule the surviving line of a member actually followed.
Its random draws are a function of ``(seed, step)`` only, so a run is deterministic given the
seed and a run resumed from a :class:`lrjax.hooks.Checkpoint` (which keeps the records) equals
an uninterrupted one bit for bit.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> import lrjax
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     params = jnp.zeros(3)
  ...     return params, optax.inject_hyperparams(optax.sgd)(member["lr"]).init(params)
  >>> def step(state, batch, member):
  ...     params, opt_state = state
  ...     xb, yb = batch
  ...     loss, g = jax.value_and_grad(lambda p: jnp.mean((xb @ p - yb) ** 2))(params)
  ...     tx = optax.inject_hyperparams(optax.sgd)(member["lr"])
  ...     updates, opt_state = tx.update(g, opt_state)
  ...     return (params + updates, opt_state), {"loss": loss}
  >>> def evaluate(state, member, data):
  ...     return {"loss": jnp.mean((data[0] @ state[0] - data[1]) ** 2)}
  >>> pbt = lrjax.PBT({"learning_rate": lrjax.Range(1e-3, 0.5)}, metric="loss", mode="min",
  ...                 ready=10, seed=0)
  >>> out = lrjax.fit(lrjax.vectorize(step, init), {"lr": np.geomspace(1e-3, 0.3, 4)}, (x, y),
  ...                 num_steps=40, chunk_steps=10, batch_size=16,
  ...                 hooks=[lrjax.hooks.Evaluate(evaluate, (x, y)), pbt])
  >>> pbt.steps.tolist(), pbt.parents.shape, pbt.values["learning_rate"].shape
  ([0, 10, 20, 30], (4, 3), (4, 4))

References:
  Jaderberg et al., Population Based Training of Neural Networks, arXiv:1711.09846, 2017.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, engine

__all__ = ["PBT", "Range", "ancestry", "lineage_schedule"]

PyTree = Any
_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


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


def _is_injected(x: Any) -> bool:
    return isinstance(x, _INJECTED)


def _injected_nodes(state: PyTree) -> list:
    return [x for x in jax.tree.leaves(state, is_leaf=_is_injected) if _is_injected(x)]


def _state_names(state: PyTree) -> tuple[set, set]:
    """Numeric injected hyperparameters of the state, and those a schedule recomputes."""
    numeric, scheduled = set(), set()
    for node in _injected_nodes(state):
        computed = set(getattr(node, "hyperparams_states", {}) or {})
        scheduled |= computed & set(node.hyperparams)
        numeric |= set(node.hyperparams) - computed
    return numeric, scheduled


def _member_table(members: PyTree) -> Mapping | None:
    """Where named member settings live: the dict itself, or ``members.hparams``."""
    if isinstance(members, Mapping):
        return members
    hparams = getattr(members, "hparams", None)
    return hparams if isinstance(hparams, Mapping) else None


def _with_member_values(members: PyTree, values: Mapping[str, np.ndarray]) -> PyTree:
    if isinstance(members, Mapping):
        return {**members, **values}
    return members._replace(hparams={**members.hparams, **values})


def _read_state(state: PyTree, name: str) -> jax.Array:
    for node in _injected_nodes(state):
        if name in node.hyperparams:
            return node.hyperparams[name]
    raise KeyError(name)  # pragma: no cover - names are located before they are read


@functools.lru_cache(maxsize=32)
def _exchange_program(program: engine.Vectorized | None, names: tuple[str, ...]) -> Callable:
    """``state -> state[source]`` with the hyperparameters ``names`` of the replaced members
    set in every injected optimizer state; compiled once per state shape, sharded like
    ``program``'s state (the gather crosses devices)."""

    def exchange(state, source, replaced, values):
        state = jax.tree.map(lambda a: a[source], state)

        def set_values(node):
            if not _is_injected(node):
                return node
            hparams = dict(node.hyperparams)
            for name in names:
                if name in hparams:
                    old = hparams[name]
                    hparams[name] = jnp.where(replaced, values[name].astype(old.dtype), old)
            return node._replace(hyperparams=hparams)

        return jax.tree.map(set_values, state, is_leaf=_is_injected)

    if program is None:  # the sequential (debugging) path: host arrays, nothing to donate
        return jax.jit(exchange)
    kwargs: dict[str, Any] = {"donate_argnums": (0,)}
    if program.mesh is not None:
        ms, rep = program.sharding(0), program.sharding(None)
        kwargs.update(in_shardings=(ms, rep, rep, rep), out_shardings=ms)
    return jax.jit(exchange, **kwargs)


class PBT:
    """Population-based training as a hook of :func:`lrjax.fit` (see the module docstring).

    Args:
      space: ``{name: Range}`` the explored hyperparameters (a ``(low, high)`` pair is a
        log-scale :class:`Range`).
      metric: the ranking metric: the name of a metric of the :class:`lrjax.hooks.Evaluate`
        hook placed before this one (else of the step's training metrics, averaged over the
        last chunk), or ``metric(loop, group) -> [group.size]`` values.
      mode: ``"max"`` (accuracy) or ``"min"`` (loss).
      ready: steps between exploit/explore events, ``>= 1``; events happen after the first
        chunk that ends at least ``ready`` steps after the last one, never after the last step
        (make ``chunk_steps`` divide ``ready``).
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

    After (or during) a run, host arrays over the ``K`` real members and ``E`` events:
    ``steps`` ``[E + 1]`` the first step of each segment (0, then each event); ``values``
    ``{name: [K, E + 1]}`` the hyperparameter in each segment; ``parents`` ``[K, E]`` whose
    state member ``k`` continued from at each event (``k`` when it kept its own); ``scores``
    ``[K, E]`` the ranking metric at each event.

    All members must train in one group (``fit``'s default ``group_size``).
    """

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
        self._reset(0)
        self._restored = False
        self._evaluate = None
        self._in_state: set = set()
        self._in_members: set = set()

    def __repr__(self) -> str:
        # Every argument: a checkpoint's identity describes the hook by its repr.
        return (
            f"PBT(space={self.space}, metric={self.metric!r}, mode={self.mode!r}, "
            f"ready={self.ready}, fraction={self.fraction}, resample_probability="
            f"{self.resample_probability}, factors={self.factors}, seed={self.seed}, population="
            f"{None if self.population is None else self.population.tolist()}, loss={self.loss!r})"
        )

    def _reset(self, k: int) -> None:
        self.steps = np.zeros((0,), np.int64)
        self.values = {name: np.zeros((k, 0), np.float32) for name in self.names}
        self.parents = np.zeros((k, 0), np.int64)
        self.scores = np.zeros((k, 0), np.float32)

    # -- the hook protocol --------------------------------------------------------------------

    def on_start(self, loop) -> None:
        from lrjax import hooks

        if len(loop.groups) != 1:
            raise ValueError(
                f"PBT exchanges members within one compiled group, but the members train in "
                f"{len(loop.groups)} groups; train them in one (group_size=None, no "
                "memory_budget)"
            )
        k = loop.num_members
        if self.population is not None and self.population.shape != (k,):
            raise ValueError(
                f"population must hold one int per member, [K={k}], got shape "
                f"{self.population.shape}"
            )
        group = loop.groups[0]
        numeric, scheduled = _state_names(group.state)
        table = _member_table(group.members_host) or {}
        self._in_state = {n for n in self.names if n in numeric}
        self._in_members = {n for n in self.names if n in table}
        for name in self.names:
            if name not in self._in_state and name not in self._in_members:
                why = ""
                if name in scheduled:
                    why = (
                        f" ({name!r} is computed by a schedule at every step: explore the "
                        "member setting the schedule is built from, e.g. its peak)"
                    )
                raise ValueError(
                    f"space[{name!r}] is neither a numeric optax.inject_hyperparams "
                    f"hyperparameter of the state {sorted(numeric)} nor a member setting "
                    f"{sorted(table)}{why}"
                )
        self._evaluate = None
        if isinstance(self.metric, str):
            mine = next(i for i, h in enumerate(loop.hooks) if h is self)
            earlier = [h for h in loop.hooks[:mine] if isinstance(h, hooks.Evaluate)]
            self._evaluate = earlier[0] if earlier else None
        if not self._restored:
            self._reset(k)
            self.steps = np.zeros((1,), np.int64)
            current = self._read(loop, group)
            self.values = {n: current[n][:, None].astype(np.float32) for n in self.names}
        self._restored = False

    def after_chunk(self, loop, group) -> None:
        if loop.step >= loop.num_steps or loop.step - int(self.steps[-1]) < self.ready:
            return
        real = group.real
        scores = self._scores(loop, group)[:real]
        diverged = self._diverged(loop, group)[:real] | ~np.isfinite(scores)
        current = self._read(loop, group)
        source = np.arange(group.size)
        new = {n: current[n].astype(np.float32).copy() for n in self.names}
        rng = np.random.default_rng([self.seed, loop.step])
        population = np.zeros(real, np.int64) if self.population is None else self.population
        for p in np.unique(population[population >= 0]):
            idx = np.flatnonzero(population == p)
            if len(idx) < 2:
                continue
            n = max(1, math.floor(self.fraction * len(idx)))
            key = np.where(diverged[idx], -np.inf, scores[idx] * (1 if self.mode == "max" else -1))
            order = idx[np.argsort(-key, kind="stable")]
            top = [int(i) for i in order[:n] if not diverged[i]]
            if not top:
                continue  # every member diverged: nobody to copy
            bottom = set(order[-n:].tolist()) | set(idx[diverged[idx]].tolist())
            for k in sorted(bottom - set(top)):
                donor = top[int(rng.integers(len(top)))]
                source[k] = donor
                for name in self.names:
                    new[name][k] = self._explore(name, float(current[name][donor]), rng)
        replaced = source[:real] != np.arange(real)
        self._exchange(loop, group, source, new)
        self.steps = np.append(self.steps, np.int64(loop.step))
        self.parents = np.concatenate([self.parents, source[:real, None]], axis=1)
        self.scores = np.concatenate([self.scores, scores[:, None].astype(np.float32)], axis=1)
        for name in self.names:
            value = np.where(replaced, new[name][:real], current[name][:real]).astype(np.float32)
            self.values[name] = np.concatenate([self.values[name], value[:, None]], axis=1)

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "parents": self.parents,
            "scores": self.scores,
            "values": dict(self.values),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if "steps" not in state:  # nothing saved yet
            return
        self.steps = np.asarray(state["steps"], np.int64)
        e = len(self.steps) - 1
        values = state.get("values", {})
        k = len(np.asarray(values[self.names[0]]))
        self.values = {n: np.asarray(values[n], np.float32).reshape(k, e + 1) for n in self.names}
        # Zero-size arrays are not saved (before the first event).
        self.parents = np.asarray(state.get("parents", np.zeros((k, 0))), np.int64).reshape(k, e)
        self.scores = np.asarray(state.get("scores", np.zeros((k, 0))), np.float32).reshape(k, e)
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

    # -- helpers ------------------------------------------------------------------------------

    def _explore(self, name: str, value: float, rng: np.random.Generator) -> np.float32:
        r = self.space[name]
        if rng.uniform() < self.resample_probability:
            value = r.sample(rng)
        else:
            value = value * self.factors[int(rng.integers(len(self.factors)))]
        return np.float32(min(max(value, r.low), r.high))

    def _read(self, loop, group) -> dict[str, np.ndarray]:
        """Every member's current value of each explored hyperparameter ``[size]``: the
        optimizer state's where it lives there (the value the updates use)."""
        out = {}
        table = _member_table(group.members_host)
        for name in self.names:
            if name in self._in_state:
                out[name] = np.asarray(engine.to_host(_read_state(group.state, name)))
            else:
                out[name] = np.asarray(table[name])
            if out[name].shape != (group.size,):
                raise ValueError(
                    f"the explored hyperparameter {name!r} must be one scalar per member, got "
                    f"shape {out[name].shape[1:]}"
                )
        return out

    def _scores(self, loop, group) -> np.ndarray:
        if callable(self.metric):
            values = np.asarray(self.metric(loop, group), np.float64)
        elif self._evaluate is not None:
            latest = self._evaluate.latest.get(group.index, {})
            if self.metric not in latest:
                raise ValueError(
                    f"the PBT metric {self.metric!r} is not among the evaluated metrics "
                    f"{sorted(latest)}"
                )
            values = np.asarray(engine.to_host(latest[self.metric]), np.float64)
        else:
            metrics = loop.group_metrics(group)
            if self.metric not in metrics:
                raise ValueError(
                    f"the PBT metric {self.metric!r} is neither evaluated (no Evaluate hook "
                    f"before PBT) nor a training metric {sorted(metrics)}"
                )
            window = metrics[self.metric][:, loop.step - loop.last_chunk : loop.step]
            values = np.mean(window.astype(np.float64), axis=1)  # nan if any step was nan
        if values.shape[0] < group.real:
            raise ValueError(f"metric must give one value per member, got shape {values.shape}")
        return values

    def _diverged(self, loop, group) -> np.ndarray:
        bad = np.zeros(group.size, bool)
        losses = (loop.metrics or {}).get(self.loss)
        if losses is not None:
            last = losses[group.start : group.start + group.real, loop.step - 1]
            bad[: group.real] |= ~np.isfinite(last.astype(np.float64))
        state = group.state
        while getattr(type(state), "is_lrjax_wrapper", False):
            alive = getattr(state, "alive", None)
            if alive is not None:
                bad |= ~np.asarray(engine.to_host(alive), bool).reshape(group.size)
            state = state.state
        return bad

    def _exchange(self, loop, group, source: np.ndarray, new: Mapping[str, np.ndarray]) -> None:
        if (source == np.arange(group.size)).all():
            return  # nothing moves: the state stays bit-identical
        replaced = source != np.arange(group.size)
        in_state = tuple(n for n in self.names if n in self._in_state)
        program = _exchange_program(loop.program if loop.vectorize else None, in_state)
        args = (
            np.asarray(source, np.int32),
            replaced,
            {n: np.asarray(new[n], np.float32) for n in in_state},
        )
        state = program(group.state, *loop.put(args, None))
        if not loop.vectorize:
            state = jax.tree.map(lambda a: a if engine.is_key(a) else np.asarray(a), state)
        group.state = state
        in_members = [n for n in self.names if n in self._in_members]
        if in_members:
            table = _member_table(group.members_host)
            values = {}
            for n in in_members:
                old = np.asarray(table[n])
                values[n] = np.where(replaced, new[n].astype(old.dtype), old[source])
            group.set_members(loop, _with_member_values(group.members_host, values))
