"""Per-group learning rates: layer-wise LR decay (LLRD) and named parameter groups, traced.

Fine-tuning a pretrained network usually gives its parts different learning rates: the new
head the full rate, the pretrained backbone a smaller one (or none: a frozen backbone), and,
with layer-wise LR decay, each layer a rate that shrinks geometrically with its distance from
the head. For a leaf :math:`p` of layer depth :math:`d_p` (0 = the input side) in group
:math:`g_p`,

.. math::
    \\eta_p(t) = \\eta(t)\\; m_{g_p}\\; \\gamma^{\\,d_{max} - d_p}

with :math:`\\eta(t)` the optimizer's (scheduled) learning rate, :math:`m_g \\ge 0` the group's
LR multiplier (0 freezes it) and :math:`\\gamma > 0` the layer decay (ELECTRA uses 0.8, BEiT
0.65-0.9; 1 switches LLRD off), :math:`d_{max}` the largest depth (the head's: it gets the
full rate). Both :math:`\\gamma` and every :math:`m_g` are ordinary optimizer arguments of the
factory :func:`discriminative` returns, so ``optax.inject_hyperparams`` keeps them in the
optimizer state: under :func:`lrjax.sweep.train` they are per-member hyperparameters, traced,
and a sweep over the decay factor is one compiled program.

The per-leaf factor multiplies the optimizer's final update. Every optax optimizer applies its
learning rate as the last factor of its update, so this is the same as running that optimizer
with the rate :math:`\\eta_p` on each group (momentum buffers and Adam moments are per leaf;
decoupled weight decay is scaled with the rate, as in PyTorch's per-group ``lr``).

Pieces: :func:`layer_depths` (depth per leaf of a Flax parameter tree), :func:`group_labels`
(group per leaf, by regex on the leaf's path), :func:`leaf_scales` (the formula),
:func:`scale_by_leaf` (the gradient transformation), :func:`discriminative` (all of them around
an optax optimizer factory).

References:
  Howard & Ruder, Universal Language Model Fine-tuning for Text Classification (ULMFiT,
  discriminative fine-tuning), arXiv:1801.06146, 2018; Clark et al., ELECTRA, arXiv:2003.10555,
  2020 (layer-wise LR decay); Bao et al., BEiT, arXiv:2106.08254, 2021.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lrjax import _checks

__all__ = [
    "discriminative",
    "group_labels",
    "layer_depths",
    "leaf_scales",
    "path_name",
    "scale_by_leaf",
]

PyTree = Any
Array = jax.Array
MULT_SUFFIX = "_lr_mult"


def path_name(path: Sequence[Any]) -> str:
    """A key path (``jax.tree_util``) as ``"a/b/c"``: the names regexes are matched against.

    Examples:
      >>> import jax
      >>> [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(
      ...     {"Dense_0": {"kernel": 1, "bias": 2}})[0]]
      ['Dense_0/bias', 'Dense_0/kernel']
    """
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _named_leaves(params: PyTree) -> list[tuple[str, Any]]:
    return [(path_name(p), v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]]


def _tree_like(params: PyTree, values: Sequence[Any]) -> PyTree:
    return jax.tree.unflatten(jax.tree.structure(params), list(values))


def layer_depths(params: PyTree, order: Sequence[str] | None = None) -> PyTree:
    """The layer depth of each leaf of a parameter tree (0 = nearest the input).

    Without ``order``, the depth of a leaf is the position of its top-level key in the
    top-level mapping, in that mapping's own order. ``flax.linen`` builds ``params`` in the
    order the submodules are created, which for a ``@compact`` module is the forward order:
    ``MLP`` gives ``Dense_0: 0, Dense_1: 1, ...``; a conv and its BatchNorm are two depths.
    This reads the mapping's own order, so pass the tree as Flax returns it
    (``module.init(...)["params"]``, ``lrjax.Model.init(key)``): ``jax.eval_shape``,
    ``jax.tree.map`` and every other ``jax.tree`` function rebuild dicts with sorted keys
    (``BatchNorm_0`` before ``Conv_0``, ``Dense_10`` before ``Dense_2``); give ``order`` for
    such a tree.

    With ``order``, a sequence of regular expressions, the depth of a leaf is the index of the
    first one that ``re.search``-es its path ``"module/.../name"`` (:func:`path_name`): use it
    for ``flax.nnx`` trees (whose keys are not in call order), to put several modules at one
    depth (``"block0|embed"``), or to give a transformer's blocks their index.

    Args:
      params: the parameter tree (arrays or ``jax.ShapeDtypeStruct``; only its structure and
        names are read).
      order: regexes, input side first; every leaf must match one.

    Returns:
      A tree like ``params`` of Python ints.

    Raises:
      ValueError: ``params`` is not a mapping (without ``order``), a pattern is not a valid
        regex, or a leaf matches no pattern of ``order`` (the message names it).

    Examples:
      >>> import jax.numpy as jnp
      >>> p = {"embed": {"w": jnp.ones(2)}, "block0": {"w": jnp.ones(2)},
      ...      "head": {"w": jnp.ones(2), "b": jnp.ones(1)}}
      >>> d = layer_depths(p)
      >>> d["embed"], d["block0"], d["head"]
      ({'w': 0}, {'w': 1}, {'b': 2, 'w': 2})
      >>> layer_depths(p, order=["embed|block0", "head"])["block0"]
      {'w': 0}
    """
    named = _named_leaves(params)
    if order is None:
        if not isinstance(params, Mapping):
            raise ValueError(
                f"params must be a mapping of top-level modules to order by, got "
                f"{type(params).__name__}; pass order=[regex, ...] for other trees"
            )
        position = {str(k): i for i, k in enumerate(params)}
        return _tree_like(params, [position[name.split("/")[0]] for name, _ in named])
    patterns = _compile("order", order)
    depths = []
    for name, _ in named:
        hit = next((i for i, (_, rx) in enumerate(patterns) if rx.search(name)), None)
        if hit is None:
            raise ValueError(
                f"order must match every parameter; {name!r} matches none of "
                f"{[p for p, _ in patterns]}"
            )
        depths.append(hit)
    return _tree_like(params, depths)


def _compile(name: str, patterns: Any) -> list[tuple[str, re.Pattern]]:
    if isinstance(patterns, str) or not isinstance(patterns, Sequence) or not patterns:
        raise ValueError(f"{name} must be a non-empty sequence of regexes, got {patterns!r}")
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append((p, re.compile(p)))
        except (re.error, TypeError) as e:
            raise ValueError(f"{name}[{i}] must be a regular expression, got {p!r}: {e}") from e
    return out


def group_labels(params: PyTree, groups: Mapping[str, str], default: str = "rest") -> PyTree:
    """The group of each leaf: the first group (in ``groups``' order) whose regex
    ``re.search``-es the leaf's path (:func:`path_name`), else ``default``.

    Args:
      params: the parameter tree (only its structure and names are read).
      groups: ``{group_name: regex}``, e.g. ``{"head": "^head/", "backbone": "."}``.
      default: the group of leaves no regex matches.

    Returns:
      A tree like ``params`` of group names.

    Raises:
      ValueError: a regex is invalid or matches no parameter (a typo would otherwise leave
        its group silently empty), or a group name is not an identifier.

    Examples:
      >>> p = {"Dense_0": {"kernel": 0}, "Dense_1": {"kernel": 0}}
      >>> group_labels(p, {"head": "^Dense_1/"}, default="backbone")
      {'Dense_0': {'kernel': 'backbone'}, 'Dense_1': {'kernel': 'head'}}
    """
    if not isinstance(groups, Mapping):
        raise ValueError(f"groups must be a mapping of group name -> regex, got {groups!r}")
    for g in (*groups, default):
        if not isinstance(g, str) or not g.isidentifier():
            raise ValueError(f"group names must be Python identifiers, got {g!r}")
    patterns = _compile("groups", list(groups.values())) if groups else []
    compiled = [(g, rx) for g, (_, rx) in zip(groups, patterns, strict=True)]
    named = _named_leaves(params)
    labels = [next((g for g, rx in compiled if rx.search(n)), default) for n, _ in named]
    for g, rx in compiled:
        if not any(rx.search(n) for n, _ in named):
            raise ValueError(
                f"groups[{g!r}] = {rx.pattern!r} matches no parameter; parameters are "
                f"{[n for n, _ in named][:12]}"
            )
    return _tree_like(params, labels)


def leaf_scales(
    depths: PyTree,
    layer_decay: Any = 1.0,
    *,
    labels: PyTree | None = None,
    lr_mults: Mapping[str, Any] | None = None,
    max_depth: int | None = None,
) -> PyTree:
    """The per-leaf factor :math:`m_{g_p} \\gamma^{d_{max} - d_p}` on the learning rate.

    Args:
      depths: a tree of Python ints (:func:`layer_depths`).
      layer_decay: :math:`\\gamma > 0`; may be traced (vmapped).
      labels: a tree like ``depths`` of group names (:func:`group_labels`); None: one group.
      lr_mults: ``{group: m_g}`` (default 1 for a group not given); each may be traced.
      max_depth: :math:`d_{max}`; default the largest depth in ``depths``.

    Returns:
      A tree like ``depths`` of float32 scalars.

    Raises:
      ValueError: a concrete ``layer_decay`` that is not > 0, a concrete multiplier < 0, or a
        multiplier for a group that no leaf has.

    Examples:
      >>> s = leaf_scales({"a": 0, "b": 1, "c": 2}, 0.5)
      >>> {k: float(v) for k, v in s.items()}
      {'a': 0.25, 'b': 0.5, 'c': 1.0}
    """
    flat, treedef = jax.tree.flatten(depths)
    if not flat or not all(_checks.is_int(d) and d >= 0 for d in flat):
        raise ValueError(f"depths must be a tree of ints >= 0, got {depths!r}")
    top = max(flat) if max_depth is None else _checks.check_int("max_depth", max_depth, max(flat))
    _checks.check_magnitude("layer_decay", layer_decay, 0, None, open_min=True)
    names = [None] * len(flat) if labels is None else treedef.flatten_up_to(labels)
    mults = dict(lr_mults or {})
    known = set(names)
    for g, m in mults.items():
        if g not in known:
            raise ValueError(
                f"lr_mults names the group {g!r}, which no parameter has; groups are "
                f"{sorted(n for n in known if n is not None)}"
            )
        _checks.check_magnitude(f"lr_mults[{g!r}]", m, 0, None)
    decay = jnp.asarray(layer_decay, jnp.float32)
    one = jnp.ones((), jnp.float32)
    # An integer power is repeated multiplication (lax.integer_pow): exact to a few ulp,
    # where jnp.power with a float exponent would go through exp(log).
    scales = [
        jnp.asarray(mults.get(g, one), jnp.float32) * decay ** (top - d)
        for d, g in zip(flat, names, strict=True)
    ]
    return jax.tree.unflatten(treedef, scales)


def scale_by_leaf(scales: PyTree) -> optax.GradientTransformation:
    """Multiplies each leaf of the update by its scale (traceable scalars, a tree like the
    parameters); a leaf whose scale is 0 gets an update of exactly 0, whatever the inner
    update holds (a frozen group stays bit-for-bit unchanged). Stateless.

    Examples:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_leaf({"a": 0.0, "b": 2.0})
      >>> u, _ = tx.update({"a": jnp.array(jnp.inf), "b": jnp.array(1.0)}, tx.init(None))
      >>> {k: float(v) for k, v in u.items()}
      {'a': 0.0, 'b': 2.0}
    """

    def update(updates, state, params=None):
        del params

        def one(u, s):
            s = jnp.asarray(s).astype(u.dtype)
            return jnp.where(s == 0, jnp.zeros_like(u), u * s)

        return jax.tree.map(one, updates, scales), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def discriminative(
    optimizer: Callable[..., optax.GradientTransformation],
    params: PyTree,
    *,
    groups: Mapping[str, str] | None = None,
    default_group: str = "rest",
    order: Sequence[str] | None = None,
    frozen: Sequence[str] = (),
) -> Callable[..., optax.GradientTransformation]:
    """An optax factory like ``optimizer`` with per-group learning rates and layer-wise decay.

    The returned factory takes ``optimizer``'s arguments plus, keyword-only,
    ``layer_decay`` (:math:`\\gamma`, default 1) and ``<group>_lr_mult`` (:math:`m_g`, default
    1) for each group, and returns ``optimizer(...)`` followed by :func:`scale_by_leaf` with
    the scales of :func:`leaf_scales` (formula in the module docstring). Pass it to
    :func:`lrjax.sweep.train` as the ``optimizer``: ``inject_hyperparams`` then holds
    ``layer_decay`` and every multiplier in the optimizer state, so they may differ between
    members (traced, one compiled program) and are recorded in ``result.opt_hparams``.

    Freezing: a multiplier of 0 freezes its group per member (traced; the group's optimizer
    state is still kept); a group named in ``frozen`` is frozen for every member by
    ``optax.multi_transform`` with ``optax.set_to_zero`` (no optimizer state for it). Either
    way its parameters never change; a model's batch statistics are not parameters and keep
    updating in training mode (as PyTorch's ``requires_grad=False`` leaves them, unless the
    module is put in eval mode).

    Args:
      optimizer: an optax factory (``optax.adamw``, ``optax.sgd``, a ``functools.partial``).
      params: the parameter tree the optimizer will see; its structure and names fix depths
        and groups. Without ``order`` its top-level mapping must be in call order, as Flax
        returns it (see :func:`layer_depths`); an abstract tree from ``jax.eval_shape`` has
        sorted keys and needs ``order``.
      groups: ``{group: regex}`` (:func:`group_labels`); None: every leaf in ``default_group``.
      default_group: the group of leaves no regex matches.
      order: regexes giving depths (:func:`layer_depths`); None: top-level module order.
      frozen: groups frozen for all members.

    Returns:
      ``factory(*optimizer_args, layer_decay=1.0, <group>_lr_mult=1.0, ...,
      **optimizer_kwargs) -> optax.GradientTransformation``. Its ``check_arguments(where,
      kwargs)`` checks concrete values (``lrjax.sweep.train`` calls it for every member before
      compiling).

    Raises:
      ValueError: (when building) an unknown group in ``frozen``, a ``groups`` regex matching
        nothing, a name clash with ``optimizer``'s arguments; (when called) ``layer_decay`` not
        > 0, a multiplier < 0, or a ``*_lr_mult`` of an unknown group.

    Examples:
      >>> import jax, jax.numpy as jnp, optax
      >>> p = {"Dense_0": {"w": jnp.ones(())}, "Dense_1": {"w": jnp.ones(())},
      ...      "head": {"w": jnp.ones(())}}
      >>> sgd = discriminative(optax.sgd, p, groups={"head": "^head/"}, default_group="body")
      >>> tx = sgd(learning_rate=1.0, layer_decay=0.5, body_lr_mult=0.1)
      >>> u, _ = tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p))
      >>> {k: round(float(v["w"]), 6) for k, v in u.items()}  # -lr * m_g * decay**(2 - d)
      {'Dense_0': -0.025, 'Dense_1': -0.05, 'head': -1.0}
      >>> inject = optax.inject_hyperparams(sgd)(learning_rate=1.0, layer_decay=0.5)
      >>> sorted(inject.init(p).hyperparams)
      ['body_lr_mult', 'head_lr_mult', 'layer_decay', 'learning_rate']
    """
    if not callable(optimizer):
        raise ValueError(
            f"optimizer must be an optax factory such as optax.adamw, got {optimizer!r}"
        )
    depths = layer_depths(params, order)
    labels = group_labels(params, groups or {}, default_group)
    names = sorted(set(jax.tree.leaves(labels)) | set(groups or {}))
    frozen = tuple(frozen) if not isinstance(frozen, str) else (frozen,)
    for g in frozen:
        if g not in names:
            raise ValueError(f"frozen names the group {g!r}; groups are {names}")
    mult_names = {f"{g}{MULT_SUFFIX}": g for g in names}
    base = inspect.signature(optimizer)
    clash = [n for n in ("layer_decay", *mult_names) if n in base.parameters]
    if clash:
        raise ValueError(f"optimizer already takes the arguments {clash}; rename the groups")
    extra = [inspect.Parameter("layer_decay", inspect.Parameter.KEYWORD_ONLY, default=1.0)]
    extra += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=1.0) for n in mult_names]
    kept = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    varkw = [p for p in base.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    signature = base.replace(parameters=[*kept, *extra, *varkw])
    frozen_labels = jax.tree.map(lambda g: "frozen" if g in frozen else "train", labels)

    def split(kwargs):
        own = {n: kwargs.pop(n) for n in list(kwargs) if n in mult_names or n == "layer_decay"}
        unknown = [n for n in kwargs if n.endswith(MULT_SUFFIX) and n not in base.parameters]
        if unknown:
            raise ValueError(
                f"{unknown[0]} names an unknown group; the groups' multipliers are "
                f"{sorted(mult_names)}"
            )
        return own

    def check_arguments(where: str, kwargs: Mapping[str, Any]) -> None:
        own = split(dict(kwargs))
        if "layer_decay" in own and not callable(own["layer_decay"]):
            _checks.check_magnitude(f"{where}layer_decay", own["layer_decay"], 0, None,
                                    open_min=True)  # fmt: skip
        for n, v in own.items():
            if n != "layer_decay" and not callable(v):
                _checks.check_magnitude(f"{where}{n}", v, 0, None)

    def factory(*args, **kwargs):
        own = split(kwargs)
        check_arguments("", own)
        decay = own.get("layer_decay", 1.0)
        mults = {mult_names[n]: v for n, v in own.items() if n != "layer_decay"}
        scales = leaf_scales(depths, decay, labels=labels, lr_mults=mults)
        inner = optimizer(*args, **kwargs)
        if frozen:
            inner = optax.multi_transform(
                {"train": inner, "frozen": optax.set_to_zero()}, frozen_labels
            )
        return optax.chain(inner, scale_by_leaf(scales))

    factory.__signature__ = signature
    factory.__name__ = f"discriminative_{getattr(optimizer, '__name__', 'optimizer')}"
    factory.__doc__ = f"{factory.__name__}: see lrjax.param_groups.discriminative; groups {names}."
    factory.check_arguments = check_arguments
    # What fixes the factory, so a sweep given one built afresh reuses the compiled program
    # (lrjax._fingerprint): its closures only read these.
    factory.__lrjax_fingerprint__ = ("discriminative", optimizer, depths, labels, frozen)
    factory.groups = tuple(names)
    factory.depths = depths
    factory.labels = labels
    return factory
