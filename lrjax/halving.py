"""Successive halving between chunks: stop the worse members, re-pack the others.

At each rung (a step count) the running members are ranked on a metric the loop records (an
evaluation, or a training metric averaged over the last chunk); the best
:math:`\\max(1, \\lceil n / \\eta \\rceil)` of the :math:`n` continue, re-packed into a smaller
group (:meth:`lrjax.loop.Loop.repack`), so the stopped members stop costing compute. The rungs
are geometric,

.. math:: r_i = r_0 \\, \\eta^{\\,i}, \\qquad i = 0, 1, \\dots \\; \\text{while } r_i < T

(:math:`r_0` = ``min_steps``, :math:`T` = ``num_steps``), or given as a list. A stopped member
keeps its curves (NaN after it stopped) and its state at the rung in :func:`lrjax.fit`'s result;
``result.stopped_step`` says when it stopped and ``result.member_steps`` what the run spent.

ASHA (Li et al. 2020) promotes a trial as soon as it is in the top :math:`1/\\eta` of those that
reached its rung; in a lockstep vectorized run every member reaches a rung at the same step, so
ASHA's decisions are exactly synchronous successive halving's, computed here. Hyperband's
brackets (Li et al. 2018) are several halving schedules over disjoint members: ``bracket[k] = b``
puts member ``k`` in bracket ``b``, whose rungs are the rungs from the ``b``-th on (bracket 0
halves earliest; a bracket past the last rung trains to the end). Members are ranked only within
their bracket.

The decision is a pure function (:func:`keep_best`); the :class:`SuccessiveHalving` hook reads the
scores from the loop and re-packs. Several groups (``group_size``) are ranked together, and each
shrinks in place (groups are not merged): a compile per new group size, at most one per rung
with one group. Hooks with
per-member state follow the re-packing through ``on_repack`` (the plateau hook does; a hook with
a ``state_dict`` but no ``on_repack``, such as PBT, is refused). Trackers, the divergence guard
and the controller's knobs live in the state and are sliced with it. A
:class:`lrjax.hooks.Checkpoint` placed before this hook resumes across rungs bit for bit.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np
  >>> import lrjax
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     return {"w": jnp.zeros(3)}
  >>> def step(state, batch, member):
  ...     loss, g = jax.value_and_grad(lambda w: jnp.mean((batch[0] @ w - batch[1]) ** 2))(
  ...         state["w"])
  ...     return {"w": state["w"] - member["lr"] * g}, {"loss": loss}
  >>> halving = lrjax.SuccessiveHalving("loss", eta=2, min_steps=10)
  >>> out = lrjax.fit(lrjax.vectorize(step, init), {"lr": np.geomspace(1e-3, 0.3, 8)}, (x, y),
  ...                 num_steps=40, chunk_steps=10, batch_size=16, hooks=[halving])
  >>> halving.rungs, out.stopped_step.tolist(), out.member_steps, halving.member_steps
  ([10, 20], [10, 10, 10, 10, 20, 20, -1, -1], 160, 160)

References:
  Jamieson & Talwalkar, Non-stochastic Best Arm Identification and Hyperparameter
  Optimization, AISTATS 2016; Li et al., Hyperband, JMLR 18, 2018; Li et al., A System for
  Massively Parallel Hyperparameter Tuning (ASHA), MLSys 2020.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrjax import _checks

__all__ = ["SuccessiveHalving", "geometric_rungs", "keep_best"]


def geometric_rungs(min_steps: int, eta: int, num_steps: int) -> list[int]:
    """The rungs :math:`r_0 \\eta^i` below ``num_steps``.

    Examples:
      >>> geometric_rungs(4, 3, 100)
      [4, 12, 36]
    """
    min_steps = _checks.check_int("min_steps", min_steps, 1)
    eta = _checks.check_int("eta", eta, 2)
    rungs, r = [], min_steps
    while r < num_steps:
        rungs.append(r)
        r *= eta
    return rungs


def keep_best(scores: Any, eta: int, mode: str = "min") -> np.ndarray:
    """``[n]`` bool: the best :math:`\\max(1, \\lceil n/\\eta \\rceil)` of ``n`` scores.

    A non-finite score (a diverged member) ranks last; ties go to the earlier member.

    Examples:
      >>> keep_best([0.3, np.nan, 0.1, 0.2], eta=2).tolist()
      [False, False, True, True]
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    scores = np.asarray(scores, np.float64).reshape(-1)
    key = scores if mode == "min" else -scores
    key = np.where(np.isfinite(key), key, np.inf)
    kept = np.zeros(scores.shape, bool)
    kept[np.argsort(key, kind="stable")[: max(1, math.ceil(scores.size / eta))]] = True
    return kept


class SuccessiveHalving:
    """Successive halving (ASHA, Hyperband brackets) as a hook of :func:`lrjax.fit`.

    Args:
      metric: the ranking metric: an evaluated metric (recorded by an
        :class:`lrjax.hooks.Evaluate` hook placed before this one, at the rung), else a
        training metric of the step, averaged over the chunk that ends at the rung.
      eta: the reduction factor, an integer ``>= 2``: ``1/eta`` of the members continue.
      min_steps: the first rung :math:`r_0`; the rungs are :math:`r_0\\eta^i < T`.
      rungs: the rungs as a list instead (ascending steps in ``[1, num_steps)``); exactly one
        of ``min_steps`` and ``rungs``. Every rung must end a chunk (a multiple of
        ``chunk_steps``).
      mode: ``"min"`` (loss) or ``"max"`` (accuracy).
      bracket: ``[K]`` ints in ``[0, len(rungs)]``, Hyperband's brackets: member ``k`` halves
        at the rungs from the ``bracket[k]``-th on, ranked within its bracket. Default: one
        bracket of all members.

    After the run: ``rungs`` (the steps), ``done`` (the rungs applied), and, as in
    :func:`lrjax.fit`'s result (for callers such as :func:`lrjax.sweep.train` whose results do
    not carry them), ``stopped_step`` and ``member_steps``.
    """

    name = "halving"

    def __init__(
        self,
        metric: str,
        *,
        eta: int = 3,
        min_steps: int | None = None,
        rungs: Sequence[int] | None = None,
        mode: str = "min",
        bracket: Any = None,
    ):
        if not (isinstance(metric, str) and metric):
            raise ValueError(f"metric must be the name of a recorded metric, got {metric!r}")
        self.metric = metric
        self.eta = _checks.check_int("eta", eta, 2)
        if (min_steps is None) == (rungs is None):
            raise ValueError(
                "give exactly one of min_steps (geometric rungs) and rungs (a list of steps), "
                f"got min_steps={min_steps!r}, rungs={rungs!r}"
            )
        if min_steps is not None:
            min_steps = _checks.check_int("min_steps", min_steps, 1)
        else:
            rungs = [_checks.check_int(f"rungs[{i}]", r, 1) for i, r in enumerate(rungs)]
            if not rungs or any(b <= a for a, b in itertools.pairwise(rungs)):
                raise ValueError(f"rungs must be a non-empty ascending list of steps, got {rungs}")
        self.min_steps = min_steps
        self.rungs: list[int] = [] if rungs is None else list(rungs)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.bracket = None if bracket is None else np.asarray(bracket)
        if self.bracket is not None and (
            self.bracket.ndim != 1 or not np.issubdtype(self.bracket.dtype, np.integer)
        ):
            raise ValueError(f"bracket must be [K] ints, got {bracket!r}")
        self.done: list[int] = []
        self.stopped_step: np.ndarray | None = None
        self.member_steps: int | None = None

    # -- the hook protocol --------------------------------------------------------------------

    def on_start(self, loop) -> None:
        from lrjax.hooks import Checkpoint

        t, chunk = loop.num_steps, loop.chunk_steps
        if self.min_steps is not None:
            if self.min_steps >= t:
                raise ValueError(
                    f"min_steps must be < num_steps={t} (the first rung), got {self.min_steps}"
                )
            self.rungs = geometric_rungs(self.min_steps, self.eta, t)
        for i, r in enumerate(self.rungs):
            if r >= t or r % chunk:
                raise ValueError(
                    f"rungs must be steps in [1, num_steps={t}) that end a chunk (multiples of "
                    f"chunk_steps={chunk}), got rung {i} = {r}"
                )
        k = loop.num_members
        bracket = np.zeros(k, np.int64) if self.bracket is None else self.bracket
        if bracket.shape != (k,) or bracket.min() < 0 or bracket.max() > len(self.rungs):
            raise ValueError(
                f"bracket must hold one int per member, [K={k}], in [0, {len(self.rungs)}] (the "
                f"number of rungs), got {bracket.tolist()}"
            )
        self._bracket = bracket
        for b in np.unique(bracket[bracket < len(self.rungs)]):
            n = int(np.sum(bracket == b))
            if n < self.eta:
                raise ValueError(
                    f"members: successive halving keeps 1/eta of a population, so each needs at "
                    f"least eta={self.eta} members; bracket {b} has {n}"
                )
        me = loop.hooks.index(self)
        for i, hook in enumerate(loop.hooks):
            if i > me and isinstance(hook, Checkpoint):
                raise ValueError(
                    f"hooks[{i}] (a Checkpoint) comes after the halving hook hooks[{me}]: put the "
                    "Checkpoint first, so a resumed run is re-packed after it restores"
                )
            if hook is not self and hasattr(hook, "state_dict") and not hasattr(hook, "on_repack"):
                raise ValueError(
                    f"hooks[{i}] ({type(hook).__name__}) keeps per-member state but has no "
                    "on_repack(loop, group, slots) to follow successive halving's re-packing of "
                    "the members; it cannot run with SuccessiveHalving"
                )
        if loop.step in self.rungs and loop.step not in self.done:
            self._halve(loop)  # a run resumed from a save taken at the rung, before halving

    def on_chunk_end(self, loop) -> None:
        if loop.step in self.rungs and loop.step not in self.done:
            self._halve(loop)
        elif loop.step == loop.chunk_steps:
            self._scores(loop, loop.groups[0])  # a metric the loop never records fails now

    def on_end(self, loop) -> None:
        self.stopped_step, self.member_steps = loop.stopped_step.copy(), loop.member_steps

    def state_dict(self) -> dict:
        return {"done": np.asarray(self.done, np.int64)}

    def load_state_dict(self, state: Mapping) -> None:
        self.done = [int(r) for r in np.asarray(state.get("done", []), np.int64).reshape(-1)]

    def on_repack(self, loop, group, slots) -> None:
        del loop, group, slots  # its state is not per member

    # -- inside -----------------------------------------------------------------------------------

    def _scores(self, loop, group) -> np.ndarray:
        """``[group.real]`` scores of the group's members at this step (NaN: diverged)."""
        evaluated = loop.evaluation(group)
        if self.metric in evaluated:
            if loop.eval_steps[-1] != loop.step:
                raise ValueError(
                    f"metric {self.metric!r} was last evaluated at step {loop.eval_steps[-1]}, "
                    f"not at the rung {loop.step}: evaluate after every chunk (an Evaluate hook "
                    "before the halving hook)"
                )
            scores = evaluated[self.metric][: group.real].astype(np.float64)
        elif self.metric in (loop.metrics or {}):
            recent = loop.metrics[self.metric][group.rows, loop.step - loop.last_chunk : loop.step]
            scores = np.mean(recent.astype(np.float64), axis=1)
        else:
            raise ValueError(
                f"metric {self.metric!r} is neither an evaluated metric "
                f"{sorted(loop.evaluations)} nor a training metric {sorted(loop.metrics or {})}"
            )
        return np.where(loop.diverged(group)[: group.real], np.nan, scores)

    def _halve(self, loop) -> None:
        rung = self.rungs.index(loop.step)
        groups = list(loop.groups)
        scores = [self._scores(loop, g) for g in groups]
        rows = np.concatenate([g.rows for g in groups])
        kept = np.ones(rows.shape, bool)
        flat = np.concatenate(scores)
        for b in range(rung + 1):  # brackets that halve at this rung
            inside = self._bracket[rows] == b
            if inside.any():
                kept[inside] = keep_best(flat[inside], self.eta, self.mode)
        offset = 0
        for g in groups:
            mine = kept[offset : offset + g.real]
            offset += g.real
            if not mine.all():
                loop.repack(g, np.flatnonzero(mine))
        self.done.append(loop.step)
