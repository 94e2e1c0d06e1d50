"""One hyperparameter controller: a layer on ``(step, init)`` that sets each member's
hyperparameters before every step.

Everything that changes a hyperparameter from outside the step goes through it: a schedule with
a per-member peak, the range test's ramp, reduce-on-plateau's scale, PBT's exploit and explore,
and what comes next (successive halving, search). Before each step the controller computes, for
every controlled name and member,

.. math:: v_t = s \\cdot \\begin{cases} o & \\text{overridden} \\\\ r(h)(t) & \\text{else}
          \\end{cases}

from the member's settings :math:`h`, its step count :math:`t` and its own per-member state, a
:class:`Knob` of scale :math:`s` (1 by default) and override :math:`o` (off by default), where
:math:`r` is the name's rule (``rule(member)`` returns a schedule or a number). It writes
:math:`v_t` where the step reads it:

* an ``optax.inject_hyperparams`` hyperparameter of that name, found anywhere in the state (a
  plain optax state, a Flax ``TrainState.opt_state``, an ``nnx.Optimizer``'s state after
  ``nnx.split``), whose update then uses it as it is;
* a member setting of that name (``member[name]``, or ``member.hparams[name]``), substituted in
  the settings the step (and the other rules) receive.

The step's metrics gain ``hparams/<name>``: the value the update used. Host-side controllers
(reduce-on-plateau, PBT, halving) turn the knobs between chunks through
:meth:`lrjax.loop.Loop.set_control`; the knobs are part of the state, an input of the compiled
chunk, so turning them never recompiles, and they follow a member wherever its state goes
(PBT's exploit, checkpoints).

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> import lrjax
  >>> def init(member):
  ...     params = jnp.zeros(2)
  ...     tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(0.0)
  ...     return params, tx.init(params)
  >>> def step(state, batch, member):
  ...     params, opt_state = state
  ...     tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(0.0)
  ...     updates, opt_state = tx.update(params - batch, opt_state)
  ...     return (params + updates, opt_state), {"loss": jnp.sum((params - batch) ** 2)}
  >>> step, init = lrjax.control(step, init, {
  ...     "learning_rate": lambda m: lrjax.warmup_cosine_decay(m["peak"], 2, 10)})
  >>> program = lrjax.vectorize(step, init)
  >>> members = {"peak": np.array([0.1, 0.5], np.float32)}
  >>> state, metrics = program.run(program.init(members), members, np.ones((4, 2), np.float32))
  >>> np.round(metrics["hparams/learning_rate"], 4).tolist()
  [[0.0, 0.05, 0.1, 0.0962], [0.0, 0.25, 0.5, 0.4809]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax import engine

__all__ = ["Controlled", "Knob", "control", "find", "hyperparameters", "replace_knobs"]

PyTree = Any
Rule = Callable[[PyTree], Any] | None
_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
_INJECTED_KEYS = frozenset({"count", "hyperparams"})  # nnx.split drops an empty inner_state
_FIX = (
    "wrap the optimizer so that it keeps {name} in its state: "
    "optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)({name}=0.0, ...)"
)


class Knob(NamedTuple):
    """The controller's state of one hyperparameter of one member (a leading axis for K).

    Attributes:
      scale: float32 factor on the value (reduce-on-plateau turns it), 1 at the start.
      override: float32 value that replaces the rule's where ``overridden`` (PBT, halving and
        search write it).
      overridden: bool, whether ``override`` is in force (False at the start).
      value: float32 value before the scale at the last step (the rule's or the override's).

    Every leaf stays finite, so a divergence layer checking the whole state never mistakes a
    knob for a diverged member.
    """

    scale: jax.Array
    override: jax.Array
    overridden: jax.Array
    value: jax.Array


class Controlled(NamedTuple):
    """A member's state under :func:`control`: the wrapped ``state``, the ``knobs`` by name,
    and ``count``, the steps taken (the step count the rules see)."""

    state: PyTree
    knobs: dict[str, Knob]
    count: jax.Array

    is_lrjax_wrapper = True


# -----------------------------------------------------------------------------------------------
# Injected hyperparameters, anywhere in a state


def _is_injected(x: Any) -> bool:
    """An optax injected state, or its ``nnx.split`` form (a mapping of its fields)."""
    if isinstance(x, _INJECTED):
        return True
    return (
        isinstance(x, Mapping)
        and _INJECTED_KEYS <= set(x.keys())
        and isinstance(x["hyperparams"], Mapping)
    )


def _field(node: Any, name: str) -> Any:
    return getattr(node, name) if isinstance(node, tuple) else node.get(name, None)


def _key_name(key: Any) -> Any:
    for attribute in ("name", "key", "idx"):
        if hasattr(key, attribute):
            return getattr(key, attribute)
    return None


def _injected_nodes(state: PyTree) -> list:
    return [x for x in jax.tree.leaves(state, is_leaf=_is_injected) if _is_injected(x)]


def hyperparameters(state: PyTree) -> dict[str, bool]:
    """The ``optax.inject_hyperparams`` hyperparameters found anywhere in ``state``:
    ``{name: scheduled}``, ``scheduled`` True where inject_hyperparams computes the value from a
    schedule of its own at every update (writing it then has no effect).

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(
      ...     0.1, 0.0, 10), momentum=0.9)
      >>> sorted(hyperparameters(tx.init(jnp.zeros(2))).items())
      [('learning_rate', True), ('momentum', False)]
    """
    found: dict[str, bool] = {}
    for node in _injected_nodes(state):
        scheduled = set(_field(node, "hyperparams_states") or {})
        for name in _field(node, "hyperparams") or {}:
            found[name] = found.get(name, False) or name in scheduled
    return found


def _read(state: PyTree, name: str) -> jax.Array:
    """The value of the injected hyperparameter ``name`` (its first occurrence)."""
    for node in _injected_nodes(state):
        hparams = _field(node, "hyperparams") or {}
        if name in hparams:
            return jax.tree.leaves(hparams[name])[0]
    raise KeyError(name)  # pragma: no cover - names are resolved before they are read


def _write(state: PyTree, values: Mapping[str, jax.Array]) -> PyTree:
    """``state`` with every injected hyperparameter named in ``values`` set to its value."""
    if not values:
        return state

    def write_node(node):
        if not _is_injected(node):
            return node

        def write_leaf(path, leaf):
            if len(path) >= 2 and _key_name(path[0]) == "hyperparams":
                name = _key_name(path[1])
                if name in values:
                    return jnp.asarray(values[name], leaf.dtype).reshape(jnp.shape(leaf))
            return leaf

        return jax.tree_util.tree_map_with_path(write_leaf, node)

    return jax.tree.map(write_node, state, is_leaf=_is_injected)


# -----------------------------------------------------------------------------------------------
# Member settings


def _settings(member: PyTree) -> Mapping | None:
    """Where named member settings live: the member itself (a dict), or ``member.hparams``."""
    if isinstance(member, Mapping):
        return member
    hparams = getattr(member, "hparams", None)
    return hparams if isinstance(hparams, Mapping) else None


def _with_settings(member: PyTree, values: Mapping[str, jax.Array]) -> PyTree:
    if not values:
        return member
    table = _settings(member)
    new = {**table}
    for name, value in values.items():
        new[name] = jnp.asarray(value, jnp.result_type(table[name]))
    if isinstance(member, Mapping):
        return type(member)(new) if type(member) is not dict else new
    return member._replace(hparams=new)


# -----------------------------------------------------------------------------------------------
# The layer


def _rules(rules: Mapping[str, Rule] | Sequence[str]) -> dict[str, Rule]:
    if isinstance(rules, str):
        raise ValueError(
            f"rules must be a mapping {{name: rule}} or a list of names, got {rules!r}"
        )
    if not isinstance(rules, Mapping):
        rules = dict.fromkeys(rules)
    out = {}
    for name, rule in rules.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"rules must be keyed by hyperparameter names, got {name!r}")
        if rule is not None and not callable(rule):
            raise ValueError(
                f"rules[{name!r}] must be a function rule(member) -> schedule or number, or "
                f"None (keep the value the state or the member holds), got {rule!r}"
            )
        out[name] = rule
    if not out:
        raise ValueError("rules must name at least one hyperparameter, got none")
    return out


def _where(rules: Mapping[str, Rule], state: PyTree, member: PyTree) -> tuple[list, list]:
    """The names written into the member settings, and those written into the state only."""
    injected = hyperparameters(state)
    table = _settings(member) or {}
    in_member, in_state = [], []
    for name in rules:
        if name in table:
            if not jnp.issubdtype(jnp.result_type(table[name]), jnp.floating):
                raise ValueError(
                    f"lrjax.control: the member setting {name!r} holds "
                    f"{jnp.result_type(table[name])} values; a controlled setting must be a "
                    "float (the controller writes float32 values)"
                )
            in_member.append(name)
        elif name in injected:
            in_state.append(name)
        else:
            raise ValueError(
                f"lrjax.control: {name!r} is neither an optax.inject_hyperparams "
                f"hyperparameter of the state (found: {sorted(injected)}) nor a member setting "
                f"(found: {sorted(table)}); " + _FIX.format(name=name)
            )
        if injected.get(name):
            raise ValueError(
                f"lrjax.control: {name!r} is computed by a schedule inside "
                "optax.inject_hyperparams, which overwrites what the controller writes; pass a "
                f"number to the optimizer ({name}=0.0) and give the schedule to lrjax.control: "
                f"rules={{{name!r}: lambda member: <the schedule>}}"
            )
    return in_member, in_state


def _value(name: str, rule: Rule, member: PyTree, count: jax.Array, current: Any) -> jax.Array:
    """The rule's value (before knobs): ``rule(member)(count)``, ``rule(member)``, or
    ``current`` when there is no rule."""
    if rule is None:
        value = current
    else:
        # optax's schedules mix Python floats with the int32 step (optax.linear_schedule), which
        # strict dtype promotion rejects: user schedules run under standard promotion.
        with jax.numpy_dtype_promotion("standard"):
            value = rule(member)
            if callable(value):
                value = value(count)
    value = jnp.asarray(value, jnp.float32)
    if value.shape != ():
        raise ValueError(
            f"lrjax.control: rules[{name!r}] must give one scalar per member and step, got shape "
            f"{value.shape}"
        )
    return value


def _turn(knob: Knob, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(base, used)``: the override if set, else ``value``; and the base times the scale."""
    base = jnp.where(knob.overridden, knob.override, value)
    return base, knob.scale * base


def _fresh(value: jax.Array) -> Knob:
    return Knob(jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32), jnp.array(False), value)


def control(
    step: Callable,
    init: Callable | None,
    rules: Mapping[str, Rule] | Sequence[str],
    *,
    log: str | None = "hparams/",
) -> tuple[Callable, Callable | None]:
    """Wraps ``(step, init)`` so the controller sets each named hyperparameter before each step.

    Args:
      step: ``step(state, batch, member) -> (state, metrics)`` for one member.
      init: ``init(member) -> state`` (or None: wrap fresh states yourself).
      rules: ``{name: rule}``: ``rule(member)`` returns the member's schedule of ``name`` (a
        function of the step count, e.g. ``lrjax.warmup_cosine_decay(member["peak"], 100,
        1000)``) or a number; a rule of None (or a bare list of names) keeps the value the state
        or the member holds, so only the knobs change it. A name is an
        ``optax.inject_hyperparams`` hyperparameter of the state (numeric, not scheduled by
        inject_hyperparams itself), or a member setting (``member[name]`` or
        ``member.hparams[name]``; a float). Member settings are set first, so the other rules
        (and the step) see the controlled values.
      log: prefix of the metrics recording the value each step used (None: not recorded).

    Returns:
      ``(controlled_step, controlled_init)`` over :class:`Controlled` states.

    Raises:
      ValueError: naming a name found neither in the state nor in the member's settings, with
        the fix (``optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)``), or one that
        inject_hyperparams schedules itself.
    """
    if not callable(step):
        raise ValueError(f"step must be a function step(state, batch, member), got {step!r}")
    if init is not None and not callable(init):
        raise ValueError(f"init must be a function init(member) -> state, got {init!r}")
    rules = _rules(rules)
    if log is not None and not isinstance(log, str):
        raise ValueError(f"log must be a metric name prefix (a string) or None, got {log!r}")

    def settings_pass(member, knobs, count):
        """Values of the controlled member settings, and the member holding them."""
        table = _settings(member) or {}
        names = [n for n in rules if n in table]
        bases, used = {}, {}
        for name in names:
            value = _value(name, rules[name], member, count, table[name])
            bases[name], used[name] = _turn(knobs[name], value) if knobs else (value, value)
        return bases, used, _with_settings(member, used)

    def state_pass(state, member, knobs, count, names):
        bases, used = {}, {}
        for name in names:
            current = knobs[name].value if knobs else _read(state, name)
            value = _value(name, rules[name], member, count, current)
            bases[name], used[name] = _turn(knobs[name], value) if knobs else (value, value)
        return bases, used

    def controlled_step(state: Controlled, batch: PyTree, member: PyTree):
        in_member, in_state = _where(rules, state.state, member)
        del in_member
        bases, used, member = settings_pass(member, state.knobs, state.count)
        more_bases, more_used = state_pass(state.state, member, state.knobs, state.count, in_state)
        bases.update(more_bases)
        used.update(more_used)
        inner = _write(state.state, used)
        new_inner, metrics = step(inner, batch, member)
        metrics = engine.as_metrics(metrics)
        if log is not None:
            metrics = {**metrics, **{f"{log}{name}": used[name] for name in rules}}
        knobs = {name: state.knobs[name]._replace(value=bases[name]) for name in rules}
        return Controlled(new_inner, knobs, state.count + 1), metrics

    def controlled_init(member: PyTree) -> Controlled:
        count = jnp.zeros((), jnp.int32)
        bases, used, member = settings_pass(member, None, count)
        inner = init(member)
        _, in_state = _where(rules, inner, member)
        more_bases, more_used = state_pass(inner, member, None, count, in_state)
        bases.update(more_bases)
        used.update(more_used)
        inner = _write(inner, used)
        return Controlled(inner, {name: _fresh(bases[name]) for name in rules}, count)

    return controlled_step, (None if init is None else controlled_init)


# -----------------------------------------------------------------------------------------------
# The host's side


def find(state: PyTree) -> Controlled | None:
    """The :class:`Controlled` layer inside a (stacked) state's wrappers, or None."""
    while True:
        if isinstance(state, Controlled):
            return state
        if not getattr(type(state), "is_lrjax_wrapper", False):
            return None
        state = state.state


def replace_knobs(state: PyTree, update: Callable[[dict[str, Knob]], dict[str, Knob]]) -> PyTree:
    """``state`` with the knobs of its :class:`Controlled` layer replaced by
    ``update(knobs)`` (the other wrappers and every other leaf unchanged)."""
    if isinstance(state, Controlled):
        return state._replace(knobs=update(state.knobs))
    if not getattr(type(state), "is_lrjax_wrapper", False):
        raise ValueError(
            "the state has no lrjax.control layer: wrap the step with lrjax.control(step, init, "
            "rules) so host-side controllers (plateau, PBT) can set its hyperparameters"
        )
    return state._replace(state=replace_knobs(state.state, update))
