"""Batched hyperparameter search on optuna: each round asks K configurations and trains them as
the K members of ONE vectorized :func:`lrjax.fit`.

optuna's ask/tell interface gives the configurations; lrjax trains them together. A round is

1. **ask** (:func:`ask_round`): ``per_round`` trials from the study's sampler, all pending at
   once (the default ``TPESampler(constant_liar=True)`` treats the pending ones as if they had
   scored badly, so the K asks spread out). A configuration already asked in the round is told
   ``FAIL`` (user attribute ``lrjax_duplicate``) and asked again: the K members of a round are
   distinct;
2. **train** (:func:`to_members`): the configurations become the member settings, one
   ``[K]`` array per hyperparameter (float32 for floats, int32 for ints), plus the ``fixed``
   settings (a seed, say) broadcast to every member. Your step reads them from ``member``
   directly, or through :func:`lrjax.control` rules (``{"learning_rate": lambda m: m["lr"]}``);
3. **tell** (:func:`objectives`, :func:`tell_round`): each member's final ``metric``, the
   latest evaluation of that name (an :class:`lrjax.hooks.Evaluate` hook), else the mean of the
   training metric over the last chunk. A member that diverged (frozen by
   :func:`lrjax.freeze_on_divergence`, or a non-finite objective) is told ``FAIL`` (user
   attribute ``lrjax_diverged``; samplers ignore it), or ``diverged_value`` if you give one
   (a worst value the sampler learns from).

Grid and random search are the same call with ``optuna.samplers.GridSampler`` or
``RandomSampler``. With a ``storage`` (an optuna storage or URL: a
``JournalStorage(JournalFileBackend(path))`` file, ``"sqlite:///search.db"``) and a
``study_name``, a search that was interrupted continues where it stopped: rounds already told
are not rerun, a round that was asked but not told is trained with the configurations it was
asked, and trial numbers continue. Trials carry the user attributes ``lrjax_round`` and
``lrjax_member``. One process searches a study at a time.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optuna
  >>> import lrjax
  >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     return jnp.zeros(3)
  >>> def step(w, batch, member):
  ...     loss, g = jax.value_and_grad(lambda w: jnp.mean((batch[0] @ w - batch[1]) ** 2))(w)
  ...     return w - member["lr"] * g, {"loss": loss}
  >>> space = {"lr": optuna.distributions.FloatDistribution(1e-3, 0.3, log=True)}
  >>> out = lrjax.search(step, init, (x, y), space, rounds=2, per_round=4, num_steps=30,
  ...                    metric="loss", direction="minimize", batch_size=16,
  ...                    sampler=optuna.samplers.TPESampler(constant_liar=True, seed=0))
  >>> len(out.study.trials), out.rounds_run, bool(out.best_params["lr"] > 0.03)
  (8, 2, True)

References:
  Akiba et al., Optuna: A Next-generation Hyperparameter Optimization Framework, KDD 2019;
  Bergstra et al., Algorithms for Hyper-Parameter Optimization (TPE), NeurIPS 2011.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lrjax import _checks, engine, loop

__all__ = ["SearchResult", "ask_round", "objectives", "search", "tell_round", "to_members"]

PyTree = Any
# The user attributes that tie trials to rounds and members.
ROUND, MEMBER, PER_ROUND = "lrjax_round", "lrjax_member", "lrjax_per_round"
DUPLICATE, DIVERGED = "lrjax_duplicate", "lrjax_diverged"
_MAX_REDRAWS = 1000  # re-asks per member before giving up on a distinct configuration


class SearchResult(NamedTuple):
    """What :func:`search` returns.

    Attributes:
      study: the optuna study (every trial, in its storage).
      best_params: the best configuration of the study's completed trials (None if none).
      best_value: its objective (None if none).
      rounds_run: the rounds this call trained (fewer than ``rounds`` when resumed).
    """

    study: Any
    best_params: dict[str, Any] | None
    best_value: float | None
    rounds_run: int


def _optuna():
    try:
        import optuna
    except ImportError as e:  # optuna is optional: only the search needs it
        raise ImportError("lrjax.search needs optuna: pip install optuna") from e
    return optuna


def check_space(space: Any) -> dict[str, Any]:
    """``space`` as ``{name: distribution}`` after checking it: a non-empty mapping of optuna
    ``FloatDistribution``, ``IntDistribution``, or ``CategoricalDistribution`` of numbers (a
    member setting holds numbers)."""
    d = _optuna().distributions
    if not isinstance(space, Mapping) or not space:
        raise ValueError(
            f"space must be a non-empty dict {{name: optuna distribution}}, got {space!r}"
        )
    for name, dist in space.items():
        if isinstance(dist, d.CategoricalDistribution):
            bad = [c for c in dist.choices if isinstance(c, bool | str) or
                   not isinstance(c, int | float | np.integer | np.floating)]  # fmt: skip
            if bad:
                raise ValueError(
                    f"space[{name!r}] must choose among numbers (a member setting holds "
                    f"numbers), got the choices {bad}"
                )
        elif not isinstance(dist, d.FloatDistribution | d.IntDistribution):
            raise ValueError(
                f"space[{name!r}] must be an optuna FloatDistribution, IntDistribution or "
                f"CategoricalDistribution, got {dist!r}"
            )
    return dict(space)


def space_size(space: Mapping[str, Any]) -> float:
    """The number of distinct configurations of ``space`` (``inf`` with a continuous float)."""
    d = _optuna().distributions
    size = 1.0
    for dist in space.values():
        if isinstance(dist, d.CategoricalDistribution):
            size *= len(set(dist.choices))
        elif isinstance(dist, d.IntDistribution):
            size *= (dist.high - dist.low) // dist.step + 1
        elif dist.step is not None:
            size *= math.floor((dist.high - dist.low) / dist.step + 1e-9) + 1
        else:
            return math.inf
    return size


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((n, float(v)) for n, v in params.items()))


def _round_trials(study) -> tuple[dict[int, list], dict[int, list]]:
    """``(told, pending)``: the study's lrjax trials by round (duplicates left out)."""
    running = _optuna().trial.TrialState.RUNNING
    told: dict[int, list] = {}
    pending: dict[int, list] = {}
    for t in study.get_trials(deepcopy=False):
        if ROUND not in t.user_attrs or t.user_attrs.get(DUPLICATE) is not None:
            continue
        (pending if t.state == running else told).setdefault(t.user_attrs[ROUND], []).append(t)
    return told, pending


def ask_round(study, space: Mapping[str, Any], k: int, round_index: int) -> list[tuple[int, dict]]:
    """The ``k`` distinct configurations of round ``round_index``: ``[(trial number, params)]``.

    The round's trials already asked and not told (an interrupted round) come first, in member
    order; new ones are asked for the rest. A configuration equal to one asked in the round is
    told ``FAIL`` (user attribute ``lrjax_duplicate``: the trial it repeats) and asked again.
    """
    told, pending = _round_trials(study)
    mine = sorted(pending.get(round_index, []), key=lambda t: t.user_attrs.get(MEMBER, 0))
    asked = [(t.number, dict(t.params)) for t in mine]
    seen = {_key(p): n for n, p in asked}
    seen.update({_key(t.params): t.number for t in told.get(round_index, [])})
    fail = _optuna().trial.TrialState.FAIL
    redraws = 0
    while len(asked) + len(told.get(round_index, [])) < k:
        trial = study.ask(dict(space))
        key = _key(trial.params)
        if key in seen:
            redraws += 1
            trial.set_user_attr(DUPLICATE, seen[key])
            with _stoppable(study):
                study.tell(trial, state=fail)
            if redraws > _MAX_REDRAWS * k:
                raise RuntimeError(
                    f"the sampler kept repeating configurations of round {round_index} "
                    f"({redraws} redraws): it cannot give {k} distinct ones"
                )
            continue
        trial.set_user_attr(ROUND, round_index)
        trial.set_user_attr(MEMBER, len(asked))
        seen[key] = trial.number
        asked.append((trial.number, dict(trial.params)))
    return asked


def to_members(
    configs: Sequence[Mapping[str, Any]], space: Mapping[str, Any], fixed: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """The member settings of ``configs``: ``{name: [K]}`` per hyperparameter (int32 for an
    ``IntDistribution`` or a categorical of ints, else float32), and each ``fixed`` setting
    broadcast to ``[K]``.

    Examples:
      >>> from optuna.distributions import FloatDistribution, IntDistribution
      >>> m = to_members([{"lr": 0.1, "n": 2}, {"lr": 0.2, "n": 3}],
      ...                {"lr": FloatDistribution(0, 1), "n": IntDistribution(1, 4)}, {"seed": 0})
      >>> {k: (v.dtype.name, v.tolist()) for k, v in m.items()}  # doctest: +NORMALIZE_WHITESPACE
      {'lr': ('float32', [0.10000000149011612, 0.20000000298023224]),
       'n': ('int32', [2, 3]), 'seed': ('int32', [0, 0])}
    """
    d = _optuna().distributions
    k = len(configs)
    members = {}
    for name, dist in space.items():
        values = [c[name] for c in configs]
        integral = isinstance(dist, d.IntDistribution) or (
            isinstance(dist, d.CategoricalDistribution)
            and all(isinstance(c, int | np.integer) for c in dist.choices)
        )
        members[name] = np.asarray(values, np.int32 if integral else np.float32)
    for name, value in fixed.items():
        value = np.asarray(value)
        dtype = np.int32 if value.dtype.kind in "iu" else value.dtype
        dtype = np.float32 if value.dtype.kind == "f" else dtype
        members[name] = np.full((k,), value, dtype)
    return members


def objectives(fitted: loop.FitResult, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(values [K] float64, diverged [K] bool)`` of a finished :func:`lrjax.fit`.

    The value is the latest evaluation of ``metric`` (``loop.evaluations``), else the mean of
    the training metric ``metric`` over the last chunk; a member diverged when a divergence
    layer froze it or its value is not finite.
    """
    run = fitted.loop
    if metric in run.evaluations:
        values = np.asarray(run.evaluations[metric][:, -1], np.float64)
    elif metric in fitted.metrics:
        window = fitted.metrics[metric][:, run.num_steps - run.last_chunk : run.num_steps]
        values = np.mean(np.asarray(window, np.float64).reshape(len(window), -1), axis=1)
    else:
        raise ValueError(
            f"metric must be a metric the loop records: evaluated {sorted(run.evaluations)} or "
            f"trained {sorted(fitted.metrics)}, got {metric!r}"
        )
    frozen = np.concatenate([run.diverged(g)[: g.real] for g in run.groups])
    return values, frozen | ~np.isfinite(values)


def tell_round(
    study, numbers: Sequence[int], values: Any, diverged: Any, diverged_value: float | None
) -> None:
    """Tells trial ``numbers[k]`` its ``values[k]``; a diverged one ``FAIL`` (user attribute
    ``lrjax_diverged``), or ``diverged_value`` when given."""
    optuna = _optuna()
    for number, value, bad in zip(numbers, values, diverged, strict=True):
        if bad:
            _set_user_attr(study, number, DIVERGED, True)
        with _stoppable(study):
            if bad and diverged_value is None:
                study.tell(number, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(number, float(diverged_value if bad else value))


@contextlib.contextmanager
def _stoppable(study):
    # GridSampler ends a study whose grid is exhausted with study.stop(), which optuna allows
    # only inside study.optimize (else it raises before the trial is stored); here the rounds
    # end the search, so the stop is allowed and has no effect.
    local = study._thread_local
    before = getattr(local, "in_optimize_loop", False)
    local.in_optimize_loop = True
    try:
        yield
    finally:
        local.in_optimize_loop = before


def _set_user_attr(study, number: int, key: str, value: Any) -> None:
    # optuna sets a user attribute through a Trial object; a trial asked by an interrupted
    # process is known here by its number only.
    storage = study._storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    storage.set_trial_user_attr(trial_id, key, value)


def _study(sampler, storage, study_name, direction, per_round):
    optuna = _optuna()
    if sampler is None:
        sampler = optuna.samplers.TPESampler(constant_liar=True)
    study = optuna.create_study(
        storage=storage, sampler=sampler, study_name=study_name, direction=direction,
        load_if_exists=study_name is not None,
    )  # fmt: skip
    if study.direction.name.lower() != direction:
        raise ValueError(
            f"direction must match the stored study {study.study_name!r} "
            f"({study.direction.name.lower()}), got {direction!r}"
        )
    stored = study.user_attrs.get(PER_ROUND)
    if stored is not None and stored != per_round:
        raise ValueError(
            f"per_round must match the stored study {study.study_name!r} ({stored}), got "
            f"{per_round}"
        )
    study.set_user_attr(PER_ROUND, per_round)
    return study


def search(
    step: Callable | engine.Vectorized,
    init: Callable | None,
    data: Any,
    space: Mapping[str, Any],
    *,
    rounds: int,
    per_round: int,
    num_steps: int,
    metric: str,
    direction: str = "minimize",
    sampler: Any = None,
    storage: Any = None,
    study_name: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    diverged_value: float | None = None,
    batch_size: int | None = None,
    chunk_steps: int | None = None,
    hooks: Sequence[Any] | Callable[[int], Sequence[Any]] = (),
    group_size: int | None = None,
    on_round: Callable[[int, list, loop.FitResult], None] | None = None,
) -> SearchResult:
    """Searches ``space`` in ``rounds`` rounds of ``per_round`` configurations, each round ONE
    vectorized :func:`lrjax.fit` of your step (see the module docstring).

    Args:
      step: your step ``step(state, batch, member) -> (state, metrics)`` (see
        :func:`lrjax.vectorize`), reading the hyperparameters from ``member`` or through
        :func:`lrjax.control`; or a program from :func:`lrjax.vectorize` (then ``init`` is None),
        reused across calls without recompiling.
      init: ``init(member) -> state``.
      data: what :func:`lrjax.fit` takes.
      space: ``{name: optuna distribution}``: ``FloatDistribution``, ``IntDistribution``, or
        ``CategoricalDistribution`` of numbers; each name becomes a member setting.
      rounds: the study's total number of rounds, ``>= 1`` (a resumed study runs those left).
      per_round: configurations per round, K, ``>= 1``, at most the number of distinct
        configurations of ``space``.
      num_steps: training steps of every member.
      metric: the objective: an evaluated metric (an :class:`lrjax.hooks.Evaluate` in
        ``hooks``), else a training metric of the step (mean over the last chunk).
      direction: ``"minimize"`` or ``"maximize"``.
      sampler: any optuna sampler; default ``TPESampler(constant_liar=True)``.
      storage: an optuna storage or URL; with ``study_name``, an existing study resumes.
      study_name: the study's name in ``storage``.
      fixed: ``{name: number}`` member settings shared by every member (a ``seed``).
      diverged_value: the value told for a diverged member; None tells ``FAIL``.
      batch_size, chunk_steps, group_size: as in :func:`lrjax.fit`.
      hooks: the hooks of each round's fit, or ``hooks(round) -> hooks`` to give each round
        fresh ones (a stateful hook, e.g. a pruner that stops members early, must be fresh).
      on_round: ``on_round(round, [(trial number, params)], fit_result)``, after each round is
        told (save models, compute test metrics).

    Returns:
      A :class:`SearchResult`.

    Raises:
      ValueError: naming the argument: ``rounds`` or ``per_round`` < 1, ``per_round`` above the
        distinct configurations of ``space``, an empty ``space`` or an unsupported
        distribution, a ``direction`` or ``per_round`` other than the stored study's, a
        ``metric`` the loop never records (the round stays pending, so a corrected call resumes
        it).
    """
    rounds = _checks.check_int("rounds", rounds, 1)
    per_round = _checks.check_int("per_round", per_round, 1)
    space = check_space(space)
    size = space_size(space)
    if per_round > size:
        raise ValueError(
            f"per_round must be at most the {int(size)} distinct configurations of space, got "
            f"{per_round}"
        )
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if not isinstance(metric, str):
        raise ValueError(f"metric must be the name of a recorded metric, got {metric!r}")
    fixed = dict(fixed or {})
    clash = sorted(set(fixed) & set(space))
    if clash:
        raise ValueError(f"fixed must not name hyperparameters of space, got {clash}")
    if isinstance(step, engine.Vectorized):
        if init is not None:
            raise ValueError("init must be None when step is a program from lrjax.vectorize")
        program = step
    else:
        program = engine.vectorize(step, init)
    study = _study(sampler, storage, study_name, direction, per_round)

    ran = 0
    while True:
        told, pending = _round_trials(study)
        if pending:
            r = min(pending)
        else:
            r = max(told, default=-1) + 1
        if r >= rounds:
            break
        asked = ask_round(study, space, per_round, r)
        members = to_members([p for _, p in asked], space, fixed)
        fitted = loop.fit(
            program, members, data, num_steps=num_steps, chunk_steps=chunk_steps,
            batch_size=batch_size, hooks=hooks(r) if callable(hooks) else hooks,
            group_size=group_size,
        )  # fmt: skip
        values, diverged = objectives(fitted, metric)
        tell_round(study, [n for n, _ in asked], values, diverged, diverged_value)
        ran += 1
        if on_round is not None:
            on_round(r, asked, fitted)
    completed = study.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.COMPLETE,))
    if not completed:
        return SearchResult(study, None, None, ran)
    return SearchResult(study, dict(study.best_params), float(study.best_value), ran)
