r"""Learning-rate-free and schedule-free optimizers as sweep members, their one knob traced.

Every ``optax.contrib`` method that claims to remove learning-rate tuning still has one
magnitude left: a base LR, an initial distance estimate or an initial scale. :data:`METHODS`
registers each one as a :class:`Method`: a factory that takes that knob alone (the method's
other arguments at their published defaults), the knob's name and default, and the paper. Give
``method.factory`` to :func:`lrjax.sweep.train` with ``hparams={method.knob: [K] values}``:
the knob lives in the optimizer state (``optax.inject_hyperparams``), so a log grid over it is
one compiled program. :func:`switch` goes one step further: the method itself becomes a traced
per-member index, so every method × knob × seed runs as members of ONE program.

Schedule-free methods are evaluated at a different point than the one they train at (the
average :math:`x_t`, not the gradient point :math:`y_t`): pass :func:`eval_params` to
``lrjax.sweep.Evaluation(eval_params=...)`` (it is the identity for every other method, and
for a :func:`switch` picks each member's own method), and to your own evaluation of
``SweepResult.params`` with ``SweepResult.opt_state``. With batch statistics, the running
averages are the ones collected at :math:`y_t` (the schedule-free authors recompute them at
:math:`x_t` for their BatchNorm results; :func:`lrjax.recompute_batch_stats` does that).

The registered methods, knob and default, and the update at step :math:`t` (gradient
:math:`g_t`, parameters :math:`x_t`):

* ``schedule_free_sgd``, ``learning_rate`` = 1: :math:`z_{t+1} = z_t - \gamma g(y_t)`,
  :math:`x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}` with :math:`c_{t+1} \propto \gamma^2`,
  gradients taken at :math:`y_t = (1 - \beta) z_t + \beta x_t`, :math:`\beta = 0.9`.
* ``schedule_free_adamw``, ``learning_rate`` = 0.0025: the same with an RMS-normalized
  :math:`z` step (Adam without momentum) and bias correction.
* ``prodigy``, ``learning_rate`` = 1: AdamW at step :math:`\eta\, d_t`, :math:`d_t` a running
  lower bound on :math:`\|x_0 - x_*\|` from :math:`\sum_k d_k \langle g_k, x_0 - x_k\rangle`
  over a weighted gradient sum, starting at :math:`d_0 = 10^{-6}`.
* ``dadapt_adamw``, ``learning_rate`` = 1: AdamW at step :math:`\eta\, d_t`, the D-Adaptation
  estimate of :math:`d` (Prodigy's predecessor, unweighted).
* ``dog``, ``r_eps`` = 1e-6: :math:`\eta_t = \bar r_t / \sqrt{\sum_{k \le t} \|g_k\|^2}`,
  :math:`\bar r_t = \max(r_\epsilon (1 + \|x_0\|), \max_{k \le t} \|x_k - x_0\|)`.
* ``dowg``, ``init_estim_sq_dist`` = 1e-4: :math:`\eta_t = \bar r_t^2 /
  \sqrt{\sum_{k \le t} \bar r_k^2 \|g_k\|^2}`, :math:`\bar r_t^2` starting at the knob.
* ``mechanic``, ``s_init`` = 1e-6: :math:`x_t = x_0 + s_t \Delta_t` with :math:`\Delta_t` the
  summed updates of Adam at LR 1 and the scale :math:`s_t` learned online (coin betting over
  six averaging horizons), starting at ``s_init``.
* ``cocob``, ``alpha`` = 100: per coordinate, :math:`x_{t+1} = x_0 + \frac{-\sum g}{L
  \max(G + L, \alpha L)} (L + R)`, a coin-betting wealth :math:`R` bet on the sign of
  :math:`-\sum g` (:math:`L` the largest :math:`|g|`, :math:`G = \sum |g|`).

Examples:
  >>> import jax.numpy as jnp, numpy as np
  >>> from lrjax import lr_free, sweep
  >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
  >>> y = x @ np.ones((4, 1), np.float32)
  >>> model = sweep.Model(
  ...     init=lambda key: {"w": jnp.zeros((4, 1))}, apply=lambda p, x: x @ p["w"])
  >>> mse = lambda out, y: jnp.mean((out - y) ** 2, axis=-1)
  >>> m = lr_free.METHODS["schedule_free_sgd"]
  >>> res = sweep.train(
  ...     model, mse, (x, y), optimizer=m.factory, hparams={m.knob: [0.01, 0.1]},
  ...     num_steps=20, batch_size=16, options=sweep.Options(progress=False),
  ...     evaluation=sweep.Evaluation((x, y), eval_params=lr_free.eval_params))
  >>> res.eval_metrics["loss"].shape, bool(res.eval_metrics["loss"][1, -1] < 0.5)
  ((2, 2), True)

References:
  Defazio et al., The Road Less Scheduled, arXiv:2405.15682, 2024 (schedule-free).
  Mishchenko & Defazio, Prodigy, arXiv:2306.06101, 2023.
  Defazio & Mishchenko, Learning-Rate-Free Learning by D-Adaptation, arXiv:2301.07733, 2023.
  Ivgi, Hinder & Carmon, DoG is SGD's Best Friend, arXiv:2302.12022, 2023.
  Khaled, Mishchenko & Jin, DoWG Unleashed, arXiv:2305.16284, 2023.
  Cutkosky, Defazio & Mehta, Mechanic: A Learning Rate Tuner, arXiv:2306.00144, 2023.
  Orabona & Tommasi, Training Deep Networks without Learning Rates Through Coin Betting,
  arXiv:1705.07795, 2017 (COCOB).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.contrib as contrib
from jax.flatten_util import ravel_pytree

__all__ = ["METHODS", "Method", "SwitchState", "eval_params", "switch"]

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Method:
    """One learning-rate-free optimizer with its one remaining knob.

    Attributes:
      name: the registry name.
      factory: ``factory(**{knob: value}) -> optax.GradientTransformation``; the knob may be
        traced (``optax.inject_hyperparams`` injects it), the method's other arguments are
        fixed.
      knob: the name of the factory's one argument.
      default: the knob's published default (where the method claims no tuning is needed).
      reference: the paper.
      schedule_free: evaluate at the averaged point (:func:`eval_params`).
    """

    name: str
    factory: Callable[..., optax.GradientTransformation]
    knob: str
    default: float
    reference: str
    schedule_free: bool = False


# Factories of exactly one argument: inject_hyperparams binds and injects every argument of the
# factory (defaults included), and an injected integer such as mechanize's num_betas, or a
# tuple such as DoG's init_step, would break; the knob alone is injected here.


def _schedule_free_sgd(learning_rate=1.0):
    return contrib.schedule_free_sgd(learning_rate)


def _schedule_free_adamw(learning_rate=0.0025):
    return contrib.schedule_free_adamw(learning_rate)


def _prodigy(learning_rate=1.0):
    return contrib.prodigy(learning_rate)


def _dadapt_adamw(learning_rate=1.0):
    return contrib.dadapt_adamw(learning_rate)


def _dog(r_eps=1e-6):
    return contrib.dog(init_step=("heuristic", r_eps))


def _dowg(init_estim_sq_dist=1e-4):
    return contrib.dowg(init_estim_sq_dist=init_estim_sq_dist)


def _mechanic(s_init=1e-6):
    # Mechanic learns the scale of its base optimizer's updates: Adam at LR 1, as optax's own
    # docstring recommends (a schedule would multiply the same base LR).
    return contrib.mechanize(optax.adam(1.0), s_init=s_init)


def _cocob(alpha=100.0):
    return contrib.cocob(alpha=alpha)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("schedule_free_sgd", _schedule_free_sgd, "learning_rate", 1.0,
               "Defazio et al., The Road Less Scheduled, arXiv:2405.15682, 2024", True),
        Method("schedule_free_adamw", _schedule_free_adamw, "learning_rate", 0.0025,
               "Defazio et al., The Road Less Scheduled, arXiv:2405.15682, 2024", True),
        Method("prodigy", _prodigy, "learning_rate", 1.0,
               "Mishchenko & Defazio, Prodigy, arXiv:2306.06101, 2023"),
        Method("dadapt_adamw", _dadapt_adamw, "learning_rate", 1.0,
               "Defazio & Mishchenko, D-Adaptation, arXiv:2301.07733, 2023"),
        Method("dog", _dog, "r_eps", 1e-6,
               "Ivgi, Hinder & Carmon, DoG is SGD's Best Friend, arXiv:2302.12022, 2023"),
        Method("dowg", _dowg, "init_estim_sq_dist", 1e-4,
               "Khaled, Mishchenko & Jin, DoWG Unleashed, arXiv:2305.16284, 2023"),
        Method("mechanic", _mechanic, "s_init", 1e-6,
               "Cutkosky, Defazio & Mehta, Mechanic, arXiv:2306.00144, 2023"),
        Method("cocob", _cocob, "alpha", 100.0,
               "Orabona & Tommasi, COCOB, arXiv:1705.07795, 2017"),
    )
}  # fmt: skip


# -----------------------------------------------------------------------------------------------
# Several methods as members of one program


class SwitchState(NamedTuple):
    """The state of :func:`switch`: the member's method index and every method's state, over
    the flattened parameters (only the member's own one moves)."""

    index: jax.Array
    states: tuple


def _method(m: Method | str) -> Method:
    if isinstance(m, Method):
        return m
    if m not in METHODS:
        raise ValueError(f"method must be a Method or one of {', '.join(METHODS)}; got {m!r}")
    return METHODS[m]


def switch(methods: Sequence[Method | str]) -> Callable[..., optax.GradientTransformation]:
    """One optimizer factory ``factory(method, knob)`` that runs ``methods[method]`` at ``knob``.

    Both arguments may be traced and differ between members, so every method × knob × seed is a
    member of one compiled program (as :func:`lrjax.sweep.schedule_family_switch` does for
    schedules). The update is ``jax.lax.switch`` on the index: under ``vmap`` every method's
    update is computed and the member's own kept, and the state holds every method's state,
    so memory and time grow with ``len(methods)``; worth it where compiling once per method
    would cost more than the run (small models on CPU). The methods see the parameters as ONE
    flat vector (``jax.flatten_util.ravel_pytree``: a fraction of the operations to compile
    and run): exact, up to the order of float sums, for methods that are elementwise or use
    global norms (every one of :data:`METHODS`, SGD, Adam), not for layer-wise ones (LARS,
    LAMB, Muon), which would see one layer.

    Args:
      methods: :class:`Method` objects or names of :data:`METHODS` (a tuned baseline can be a
        ``Method`` of your own, its knob the peak LR).

    Returns:
      ``factory(method, knob)``: ``method`` an index in ``[0, len(methods))`` (an integer, or
      a float holding one: ``sweep.train`` without ``optimizer_kwargs`` passes float32), and
      ``knob`` the value of that method's knob.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> opt = switch(["dog", "cocob"])
      >>> tx = optax.inject_hyperparams(opt)(method=1, knob=100.0)
      >>> state = tx.init(jnp.ones(3))
      >>> u, state = tx.update(jnp.ones(3), state, jnp.ones(3))
      >>> int(state.inner_state.index), u.shape
      (1, (3,))
    """
    methods = tuple(_method(m) for m in methods)
    if not methods:
        raise ValueError("methods must hold at least one method, got none")

    def factory(method, knob):
        txs = [optax.with_extra_args_support(m.factory(**{m.knob: knob})) for m in methods]
        index = jnp.asarray(method).astype(jnp.int32)

        def init(params):
            flat = ravel_pytree(params)[0]
            return SwitchState(index, tuple(tx.init(flat) for tx in txs))

        def update(updates, state, params=None, **extra_args):
            grads, unravel = ravel_pytree(updates)
            flat = None if params is None else ravel_pytree(params)[0]

            def branch(i):
                def run(states):
                    new, inner = txs[i].update(grads, states[i], flat, **extra_args)
                    # Branches must agree on dtypes (weak types included) to be switched.
                    new = jnp.asarray(new, grads.dtype)
                    inner = jax.tree.map(lambda n, o: jnp.asarray(n, o.dtype), inner, states[i])
                    return new, (*states[:i], inner, *states[i + 1 :])

                return run

            branches = [branch(i) for i in range(len(txs))]
            new, states = jax.lax.switch(index, branches, state.states)
            return unravel(new), SwitchState(index, states)

        return optax.GradientTransformationExtraArgs(init, update)

    return factory


# -----------------------------------------------------------------------------------------------
# Where to evaluate


def _is_node(x: Any) -> bool:
    return isinstance(x, SwitchState | contrib.ScheduleFreeState)


def eval_params(opt_state: PyTree, params: PyTree) -> PyTree:
    r"""The parameters to evaluate: schedule-free's average, the iterate otherwise.

    .. math::
        x_t = \frac{y_t - (1 - \beta)\,z_t}{\beta}

    where the optimizer state holds a schedule-free state (``optax.contrib.schedule_free``,
    wrapped or not: ``inject_hyperparams``, ``chain``); ``params`` itself (:math:`y_t`) where it
    holds none; for :func:`switch`, the member's own method decides (traced, vmappable).

    Args:
      opt_state: the optimizer state of one member (or a batch, under ``vmap``).
      params: the parameters the optimizer trained (:math:`y_t`).

    Returns:
      The parameters at which validation and test are scored.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.contrib.schedule_free_sgd(1.0, b1=0.5)
      >>> p = jnp.array([1.0]); s = tx.init(p)
      >>> for _ in range(2):  # a constant gradient 1: z = 0, -1; x = 0, -0.5
      ...     u, s = tx.update(jnp.array([1.0]), s, p)
      ...     p = optax.apply_updates(p, u)
      >>> float(p[0]), float(eval_params(s, p)[0])  # trained at y = (x + z) / 2, evaluated at x
      (-0.75, -0.5)
    """
    nodes = [n for n in jax.tree.leaves(opt_state, is_leaf=_is_node) if _is_node(n)]
    if not nodes:
        return params
    if len(nodes) > 1:
        raise ValueError(
            f"opt_state holds {len(nodes)} schedule-free or switch states; eval_params takes an "
            "optimizer with at most one"
        )
    node = nodes[0]
    if isinstance(node, contrib.ScheduleFreeState):
        return contrib.schedule_free_eval_params(node, params)
    flat, unravel = ravel_pytree(params)
    branches = [lambda p, s=s: jnp.asarray(eval_params(s, p), flat.dtype) for s in node.states]
    return unravel(jax.lax.switch(node.index, branches, flat))
