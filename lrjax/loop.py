"""The host loop: chunks of compiled steps, groups of members, padding, and hooks in between.

:func:`fit` drives a :class:`lrjax.engine.Vectorized` program over ``num_steps`` steps in chunks
of ``chunk_steps``. Members are split into groups that advance one after another on the same
batches. A group of members run vectorized is sharded over the program's devices (and padded
to a multiple of their number) only when each device gets several; members run one at a time
(``execution="members"``) are sharded when every group splits evenly, and never padded;
otherwise a group runs on the first device alone, unpadded. Everything else between chunks is
a hook (:mod:`lrjax.hooks`): evaluation, reduce-on-plateau, checkpoints, the progress bar,
your callback. A hook is any object with some of these methods:

* ``on_start(loop)`` — once, before the first chunk (a checkpoint restores here);
* ``after_chunk(loop, group)`` — after each group's chunk (evaluate it, adjust its members);
* ``on_chunk_end(loop)`` — after all groups finished the chunk (save, draw, call back);
* ``state_dict()`` / ``load_state_dict(d)`` — what a checkpoint keeps of the hook, under the
  hook's ``name`` (its class name by default);
* ``on_repack(loop, group, slots)`` — a hook stopped some of ``group``'s members
  (:meth:`Loop.repack`, successive halving): slice per-member state like the group
  (``slots``: the old positions of its members now).

Hooks share data through the :class:`Loop`, never through each other: the step's metrics,
the evaluations (:meth:`Loop.record_evaluation`, :meth:`Loop.evaluation`), and the
controller's knobs (:meth:`Loop.control`, :meth:`Loop.set_control`).

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> import lrjax
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     return {"w": jnp.zeros(3)}
  >>> def step(state, batch, member):
  ...     xb, yb = batch
  ...     loss, g = jax.value_and_grad(lambda w: jnp.mean((xb @ w - yb) ** 2))(state["w"])
  ...     return {"w": state["w"] - member["lr"] * g}, {"loss": loss}
  >>> program = lrjax.vectorize(step, init)
  >>> out = lrjax.fit(program, {"lr": np.array([0.01, 0.1, 0.3], np.float32)}, (x, y),
  ...                 num_steps=50, chunk_steps=20, batch_size=16)
  >>> out.metrics["loss"].shape, bool(out.metrics["loss"][2, -1] < out.metrics["loss"][0, -1])
  ((3, 50), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from lrjax import _checks, controller, engine, feeds
from lrjax.controller import Knob

__all__ = ["FitResult", "Group", "Loop", "fit", "group_size_for_budget"]

PyTree = Any


@dataclasses.dataclass
class Group:
    """``size`` members trained together: the first ``real`` are the run's members ``rows``
    (indices into the K members; ``start .. start + real - 1`` until a hook re-packs the group,
    :meth:`Loop.repack`), the last ``size - real`` padding.

    ``members`` and ``state`` live on the devices (host arrays on the sequential path);
    ``members_host`` is the host copy of ``members``.
    """

    index: int
    start: int
    size: int
    real: int
    members: PyTree
    members_host: PyTree
    state: PyTree
    rows: np.ndarray | None = None

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(self.start, self.start + self.real)

    def set_members(self, loop: Loop, members_host: PyTree) -> None:
        """Replaces the group's member settings (e.g. a new learning-rate scale)."""
        self.members_host = members_host
        self.members = loop.put(members_host)


@dataclasses.dataclass
class Loop:
    """What hooks see and share: the program, the feed, the groups, the step reached, and the
    run's records, which any hook may read (hooks never read each other's fields).

    Records: ``metrics`` ``{name: [K, num_steps]}`` the step's metrics so far;
    ``eval_steps`` ``[E]`` and ``evaluations`` ``{name: [K, E]}`` every evaluation recorded
    (:meth:`record_evaluation`; :meth:`evaluation` is a group's latest). A member's
    hyperparameters under :func:`lrjax.control` are read with :meth:`control` and turned with
    :meth:`set_control`.
    """

    program: engine.Vectorized
    feed: feeds.Feed
    num_steps: int
    chunk_steps: int
    num_members: int
    groups: list[Group]
    hooks: Sequence[Any]
    vectorize: bool
    data: PyTree = None
    step: int = 0
    metrics: dict[str, np.ndarray] | None = None
    feed_position: int = 0
    last_chunk: int = 0  # steps done by the last chunk
    eval_steps: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))
    evaluations: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    member_steps: int = 0  # steps trained, summed over the real members
    stopped: list[Stopped] = dataclasses.field(default_factory=list)
    stopped_step: np.ndarray | None = None  # [K]: the step each member stopped at, -1: running

    def __post_init__(self):
        if self.stopped_step is None:
            self.stopped_step = np.full((self.num_members,), -1, np.int64)

    def put(self, tree: PyTree, member_axis: int | None = 0) -> PyTree:
        """Places host arrays like the program does (no-op shape on the sequential path)."""
        if not self.vectorize:
            return tree
        return self.program.put(tree, member_axis)

    def group_metrics(self, group: Group) -> dict[str, np.ndarray]:
        """The metrics of the group's real members so far, ``{name: [real, step]}``."""
        return {name: v[group.rows, : self.step] for name, v in (self.metrics or {}).items()}

    def diverged(self, group: Group) -> np.ndarray:
        """``[group.size]`` bool: the members a divergence layer
        (:func:`lrjax.freeze_on_divergence`) froze, read from its ``alive`` flag."""
        bad = np.zeros(group.size, bool)
        state = group.state
        while getattr(type(state), "is_lrjax_wrapper", False):
            alive = getattr(state, "alive", None)
            if alive is not None:
                bad |= ~np.asarray(engine.to_host(alive), bool).reshape(group.size)
            state = state.state
        return bad

    # -- re-packing (successive halving) ----------------------------------------------------------

    def repack(self, group: Group, keep: Any) -> None:
        """Continues only the real members at positions ``keep`` of ``group`` (ascending), in a
        smaller group (padded to a multiple of the devices it is sharded over); the others stop
        here: their state and settings at this step move to :attr:`stopped` (they are in
        :func:`fit`'s result), their rows of the records stay NaN from now on. A group left
        empty leaves :attr:`groups`. Every hook with an ``on_repack(loop, group, slots)`` method
        hears of it (``slots``: the old positions of the new group's members, padding
        included), to slice its own per-member state the same way.

        Nothing recompiles for values: the new group size compiles the chunk once (jit caches
        it), and every later group of that size reuses it.
        """
        keep = np.asarray(keep, np.int64).reshape(-1)
        if keep.size and (np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= group.real):
            raise ValueError(
                f"keep must hold ascending positions of the group's real members in "
                f"[0, {group.real - 1}], got {keep.tolist()}"
            )
        drop = np.setdiff1d(np.arange(group.real), keep)
        state = jax.tree.map(engine.to_host, group.state)

        def take(tree, idx):
            return jax.tree.map(lambda a: a[idx], tree)

        if drop.size:
            rows = group.rows[drop]
            stopped = Stopped(rows, self.step, take(state, drop), take(group.members_host, drop))
            self.stopped.append(stopped)
            self.stopped_step[rows] = self.step
        size = keep.size
        if size and self.vectorize and self.program.mesh is not None:
            size = -(-size // self.program.num_devices) * self.program.num_devices
        slots = np.concatenate([keep, np.repeat(keep[:1], size - keep.size)])
        if keep.size:
            group.state = self.put(take(state, slots))
            group.set_members(self, take(group.members_host, slots))
        group.size, group.real, group.rows = size, int(keep.size), group.rows[keep]
        if not keep.size:
            self.groups.remove(group)
        for hook in self.hooks:
            if hasattr(hook, "on_repack"):
                hook.on_repack(self, group, slots)

    def member_settings(self) -> PyTree:
        """Every real member's settings ``[K, ...]`` (host arrays, hooks' changes included),
        training or stopped, in the order of the K members."""
        return _every_member(self, lambda g: g.members_host, lambda s: s.members)

    def set_layout(self, layout: Mapping[int, Any], stopped: Sequence[Stopped]) -> None:
        """Gives the groups the layout a checkpoint saved after re-packing: ``{group index:
        rows}`` of the groups still training (others are gone) and the stopped members. The
        groups' states are placeholders of the right shapes, to be restored."""
        self.stopped = list(stopped)
        self.stopped_step[:] = -1
        for s in self.stopped:
            self.stopped_step[s.rows] = s.step
        groups = []
        for group in self.groups:
            if group.index not in layout:
                continue
            rows = np.asarray(layout[group.index], np.int64)
            if np.array_equal(rows, group.rows):  # never re-packed: as it was built
                groups.append(group)
                continue
            keep = np.searchsorted(group.rows, rows)
            if not np.array_equal(group.rows[np.minimum(keep, group.real - 1)], rows):
                raise ValueError(
                    f"a checkpoint's group {group.index} holds members {rows.tolist()}, not a "
                    f"subset of this run's {group.rows.tolist()}"
                )
            size = keep.size
            if self.vectorize and self.program.mesh is not None:
                size = -(-size // self.program.num_devices) * self.program.num_devices
            slots = np.concatenate([keep, np.repeat(keep[:1], size - keep.size)])
            host = jax.tree.map(lambda a, s=slots: engine.to_host(a)[s], group.state)
            group.state = self.put(host)
            group.set_members(self, jax.tree.map(lambda a, s=slots: a[s], group.members_host))
            group.size, group.real, group.rows = size, int(keep.size), rows
            groups.append(group)
        self.groups = groups

    # -- evaluations ------------------------------------------------------------------------------

    def record_evaluation(self, group: Group, metrics: Mapping[str, Any]) -> None:
        """Records an evaluation of ``group``'s members at the current step: ``metrics`` are
        ``{name: [group.size]}`` arrays (host or device); a new step adds a column."""
        if not len(self.eval_steps) or self.eval_steps[-1] != self.step:
            self.eval_steps = np.append(self.eval_steps, np.int64(self.step))
            for name, table in self.evaluations.items():
                column = np.full((self.num_members, 1), np.nan, table.dtype)
                self.evaluations[name] = np.concatenate([table, column], axis=1)
        for name, value in metrics.items():
            host = np.asarray(engine.to_host(value), np.float32)
            if name not in self.evaluations:
                shape = (self.num_members, len(self.eval_steps))
                self.evaluations[name] = np.full(shape, np.nan, np.float32)
            self.evaluations[name][group.rows, -1] = host[: group.real]

    def evaluation(self, group: Group) -> dict[str, np.ndarray]:
        """``group``'s latest evaluation, ``{name: [group.size]}`` host arrays (NaN for
        padding); empty before the first."""
        if not len(self.eval_steps):
            return {}
        out = {}
        for name, table in self.evaluations.items():
            column = np.full((group.size,), np.nan, np.float32)
            column[: group.real] = table[group.rows, -1]
            out[name] = column
        return out

    # -- the controller's knobs -------------------------------------------------------------------

    def control(self, group: Group) -> dict[str, Knob]:
        """The knobs of ``group``'s members under :func:`lrjax.control`, ``{name: Knob}`` of
        host arrays ``[group.size]``."""
        found = controller.find(group.state)
        if found is None:
            controller.replace_knobs(group.state, dict)  # raises the error naming the fix
        return {
            name: Knob(*(np.asarray(engine.to_host(a)) for a in knob))
            for name, knob in found.knobs.items()
        }

    def set_control(
        self, group: Group, name: str, *, scale: Any = None, override: Any = None
    ) -> None:
        """Turns a knob of ``group``'s members between chunks (the next chunk uses it; nothing
        recompiles): ``scale`` multiplies hyperparameter ``name``, ``override`` replaces its
        rule's value (NaN: follow the rule again). Each is ``[group.size]`` or a scalar."""
        fields = {}
        if scale is not None:
            fields["scale"] = np.broadcast_to(np.asarray(scale, np.float32), (group.size,))
        if override is not None:
            override = np.broadcast_to(np.asarray(override, np.float32), (group.size,))
            fields["overridden"] = np.isfinite(override)
            fields["override"] = np.where(fields["overridden"], override, np.float32(0))
        placed = {field: self.put(np.array(value)) for field, value in fields.items()}

        def update(knobs):
            if name not in knobs:
                raise ValueError(
                    f"name must be a hyperparameter the controller sets, one of {sorted(knobs)}, "
                    f"got {name!r}"
                )
            return {**knobs, name: knobs[name]._replace(**placed)}

        group.state = controller.replace_knobs(group.state, update)

    # -- hooks ------------------------------------------------------------------------------------

    def hook_states(self) -> dict[str, Any]:
        """``{name: hook.state_dict()}`` of every hook with state, by its name."""
        return {hook_name(h): h.state_dict() for h in self.hooks if hasattr(h, "state_dict")}

    def load_hook_states(self, states: Mapping[str, Any]) -> None:
        """Gives each hook with state its saved state, by its name (a hook list in another
        order restores the same)."""
        for hook in self.hooks:
            if hasattr(hook, "load_state_dict"):
                hook.load_state_dict(states.get(hook_name(hook), {}))


_INT_RANGES = {"i": (-(2**31), 2**31 - 1), "u": (0, 2**32 - 1)}


def check_members(members: PyTree) -> PyTree:
    """``members`` as host arrays, after checking each setting holds numbers JAX keeps as they
    are: bools, ints within 32 bits (wider ones would wrap silently: a seed of 2**32 becomes 0),
    floats; strings and objects are refused. Each error names the setting's path."""

    def check(path, value):
        array = np.asarray(value)
        name = "members" + jax.tree_util.keystr(path)
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} holds {array.dtype} values; a member setting must hold numbers (bool, "
                "int, float), one per member"
            )
        if array.dtype.kind in _INT_RANGES and array.dtype.itemsize > 4 and array.size:
            low, high = _INT_RANGES[array.dtype.kind]
            outside = (array < low) | (array > high)
            if outside.any():
                first = tuple(int(i) for i in np.argwhere(outside)[0])
                raise ValueError(
                    f"{name} must hold integers in [{low}, {high}] (32 bits; a wider one wraps "
                    f"around onto another), got {array[first]} at index {first}"
                )
        return array

    return jax.tree_util.tree_map_with_path(check, members)


HOOK_METHODS = ("on_start", "after_chunk", "on_chunk_end", "on_end", "state_dict")


def hook_name(hook: Any) -> str:
    """A hook's name: its ``name`` attribute, else its class name."""
    name = getattr(hook, "name", None)
    return name if isinstance(name, str) and name else type(hook).__name__


def check_hooks(hooks: Any) -> tuple:
    """``hooks`` as a tuple: a list of hooks, or one hook alone; each must have a hook method,
    and hooks with state distinct names (their state is checkpointed by name)."""
    if hooks is None:
        return ()
    if any(hasattr(hooks, m) for m in HOOK_METHODS):
        hooks = (hooks,)  # one hook, not in a list
    elif isinstance(hooks, str | bytes | Mapping) or not isinstance(hooks, Sequence):
        raise ValueError(
            f"hooks must be a list of hooks (or one hook), got a {type(hooks).__name__}"
        )
    hooks = tuple(hooks)
    for i, hook in enumerate(hooks):
        if not any(callable(getattr(hook, m, None)) for m in HOOK_METHODS):
            fix = (
                ": to call a function after every chunk, pass lrjax.hooks.Callback(fn)"
                if callable(hook)
                else ""
            )
            raise ValueError(
                f"hooks[{i}] has none of the hook methods {', '.join(HOOK_METHODS)}, so it would "
                f"never run; got {hook!r}{fix}"
            )
    seen: dict[str, int] = {}
    for i, hook in enumerate(hooks):
        if not hasattr(hook, "state_dict"):
            continue
        name = hook_name(hook)
        if name in seen:
            raise ValueError(
                f"hooks[{seen[name]}] and hooks[{i}] are both named {name!r}; a checkpoint keeps "
                "each hook's state by its name: give one of them another name (hook.name = ...)"
            )
        seen[name] = i
    return hooks


class Stopped(NamedTuple):
    """Members a hook stopped early (:meth:`Loop.repack`): their ``rows`` (indices into the K
    members), the ``step`` they stopped at, and their ``state`` and ``members`` settings then
    (host arrays, leading axis ``len(rows)``)."""

    rows: np.ndarray
    step: int
    state: PyTree
    members: PyTree


class FitResult(NamedTuple):
    """What :func:`fit` returns, as host arrays of the real (unpadded) members.

    Attributes:
      state: the final stacked state ``[K, ...]``.
      metrics: ``{name: [K, num_steps, ...]}`` the step's metrics at every step.
      members: the final member settings (hooks may have changed them).
      loop: the :class:`Loop`, for hooks' results.

    A member that a hook stopped early (successive halving, :mod:`lrjax.halving`) has its state
    and settings at the step it stopped in ``state`` and ``members``, and NaN metrics after it;
    ``stopped_step`` says when.
    """

    state: PyTree
    metrics: dict[str, np.ndarray]
    members: PyTree
    loop: Loop

    @property
    def stopped_step(self) -> np.ndarray:
        """``[K]`` ints: the step each member stopped at; -1 for members trained to the end."""
        return self.loop.stopped_step

    @property
    def member_steps(self) -> int:
        """Steps trained, summed over the members (``K * num_steps`` without early stops;
        padding not counted)."""
        return self.loop.member_steps

    def to_dataframe(self, kind: str = "steps"):
        """The result as a pandas table, every member setting a column: ``kind="steps"``,
        ``"evaluations"`` or ``"final"`` (see :mod:`lrjax.tables`)."""
        from lrjax.tables import fit_dataframe

        return fit_dataframe(self, kind)


def _call(hooks, name, *args):
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is not None:
            method(*args)


def group_size_for_budget(program, members, feed, chunk_steps: int, budget: int) -> int:
    """The largest group of members per device whose compiled chunk fits ``budget`` bytes.

    Memory is affine in the group size: XLA's buffer assignment is measured at 1 and 2 members
    (on one device) and extrapolated. Returns a multiple of the program's device count.
    """
    if isinstance(feed, feeds.IteratorFeed):
        raise ValueError(
            "memory_budget needs random-access data (arrays or batch_fn), not an iterator"
        )
    single = program.on(program.devices[:1])

    def bytes_for(size):
        some = engine.member_slice(members, 0, 1)
        host = engine.pad_members(some, size)
        members_spec = engine.abstract(host)
        state = jax.eval_shape(jax.vmap(program.init_fn), members_spec)
        xs = feed.chunk(0, chunk_steps, chunk_steps, host)
        data = feed.data(lambda t: t)
        return single.compiled_bytes(
            state, members_spec, engine.abstract(xs), engine.abstract(data),
            batch_fn=feed.batch_fn, per_member_batches=feed.per_member,
        )  # fmt: skip

    b1, b2 = bytes_for(1), bytes_for(2)
    if b1 is None or b2 is None:
        raise ValueError("memory_budget: this backend does not report the program's memory")
    per_member = max(b2 - b1, 1)
    base = b1 - per_member
    per_device = max(1, (budget - base) // per_member)
    return int(per_device * program.num_devices)


def _execution(program: engine.Vectorized, members: PyTree, feed: feeds.Feed) -> str | None:
    """The program's execution for these members and data; None when the step or init fails
    to trace (the first chunk, or init, then says why, naming the argument)."""
    batch = feed.peek()  # an empty iterator says so here
    try:
        return program.execution_for(members, batch)
    except Exception:
        return None


def _placed(program: engine.Vectorized, k: int, group: int, one_by_one: bool) -> engine.Vectorized:
    """``program``, or the same program on its first device alone, for ``k`` members in groups
    of ``group``.

    Members run vectorized are sharded only when each device gets several: with one member
    each, the devices' threads wait for each other (a group not divisible by the devices is
    padded with members that cost as much as real ones). Members run one at a time
    (``one_by_one``: ``execution="members"``) are sharded whenever every group splits evenly
    over the devices, so that no member is padding: each device then runs its own members'
    steps while the others run theirs (the Flax MNIST CNN, 8 members on a quiet 2-core CPU:
    1.33x the user's loop's speed, against 0.89x on one device;
    ``docs/results/bench/issue17_quiet/``).
    """
    n = program.num_devices
    if n == 1 or jax.process_count() > 1:
        return program
    if one_by_one:
        last = k % group or group  # the last group's size
        if group % n == 0 and last % n == 0:
            return program
    elif group > n:
        return program
    return program.on(program.devices[:1])


def fit(
    program: engine.Vectorized,
    members: PyTree,
    data: Any,
    *,
    num_steps: int,
    chunk_steps: int | None = None,
    batch_size: int | None = None,
    hooks: Sequence[Any] = (),
    group_size: int | None = None,
    memory_budget: int | None = None,
    vectorize: bool = True,
) -> FitResult:
    """Trains every member for ``num_steps`` steps: the host loop around a compiled program.

    Args:
      program: from :func:`lrjax.vectorize` (it needs an ``init``).
      members: the member settings, a pytree of ``[K, ...]`` arrays of numbers (bools, ints
        within 32 bits, floats; strings and wider integers are refused, naming the setting).
      data: a :class:`lrjax.feeds.Feed`, or what :func:`lrjax.feeds.as_feed` accepts: a pytree
        of arrays (shuffled minibatches of ``batch_size``, one order for all members), a
        function ``batch_fn(step)``, or an iterator of batches.
      num_steps: steps per member, ``>= 1``.
      chunk_steps: steps per compiled chunk (hooks run between chunks), ``>= 1``; default
        ``num_steps``, and a larger value is read as ``num_steps`` (one chunk). Keep it fixed
        to reuse the compiled chunk when ``num_steps`` changes (a short last chunk runs in the
        same program).
      batch_size: for array data.
      hooks: run between chunks, in order (see the module docstring): a list, or one hook
        alone; each needs a hook method (a plain function is refused: wrap it in
        :class:`lrjax.hooks.Callback`), and hooks with state distinct names (a checkpoint keeps
        each state by its hook's name). Put a :class:`lrjax.hooks.Checkpoint` first so it
        restores before the others start.
      group_size: members trained at once (rounded up to a multiple of the device count when
        the group is sharded); groups run one after another on the same batches. Default: all
        members.
      memory_budget: bytes per device; the group size is the largest that fits, by XLA's own
        estimate of the compiled chunk.
      vectorize: False runs members one by one and step by step (no vmap, no scan): the
        debugging path, same results (a bool; a string such as ``"no"`` is refused).

    Returns:
      A :class:`FitResult`.
    """
    if not isinstance(program, engine.Vectorized):
        raise ValueError(f"program must come from lrjax.vectorize, got {type(program).__name__}")
    if program.init_fn is None:
        raise ValueError("fit needs a program with an init: lrjax.vectorize(step, init)")
    num_steps = _checks.check_int("num_steps", num_steps, 1)
    chunk_steps = num_steps if chunk_steps is None else chunk_steps
    chunk_steps = min(_checks.check_int("chunk_steps", chunk_steps, 1), num_steps)
    vectorize = _checks.check_bool("vectorize", vectorize)
    members = check_members(members)
    k = engine.num_members(members)
    feed = feeds.as_feed(data, batch_size)
    if group_size is not None:
        group = _checks.check_int("group_size", group_size, 1)
    elif memory_budget is not None:
        budget = _checks.check_int("memory_budget", memory_budget, 1)
        group = group_size_for_budget(program, members, feed, chunk_steps, budget)
    else:
        group = k
    # Members run one at a time pay for padding as for real members: their last group is
    # not padded (nothing recompiles for its size: each member's step is the same program).
    one_by_one = not vectorize or _execution(program, members, feed) == "members"
    if vectorize:
        program = _placed(program, k, min(group, k), one_by_one)
    devices = program.num_devices if vectorize else 1
    group = -(-min(group, k) // devices) * devices
    num_groups = -(-k // group)
    padded = members if one_by_one else engine.pad_members(members, num_groups * group)

    loop = Loop(program, feed, num_steps, chunk_steps, k, [], check_hooks(hooks), vectorize)
    # Data constant over the run (a feed's device-resident arrays) is replicated on every
    # device: the chunk program reads it whole, and N need not divide by the device count.
    loop.data = feed.data(lambda tree: loop.put(tree, None))
    for g in range(num_groups):
        host = engine.member_slice(padded, g * group, (g + 1) * group)
        if vectorize:
            state = program.init(host)
        else:
            state = program.init_sequential(host)
        real = min(group, k - g * group)
        size = engine.num_members(host)
        loop.groups.append(Group(g, g * group, size, real, loop.put(host), host, state))
    _call(loop.hooks, "on_start", loop)
    feed.restore(loop.feed_position)

    dispatch = program.dispatch if vectorize else _dispatch_sequential(program)
    layout = {"batch_fn": feed.batch_fn, "per_member_batches": feed.per_member}
    # Without a hook between chunks nothing reads a chunk's results before the next starts:
    # the next chunk is queued before this one's metrics are read back, so the devices never
    # wait for the host in between.
    pipelined = not any(
        hasattr(hook, method) for hook in loop.hooks for method in ("after_chunk", "on_chunk_end")
    )
    shared, pending = None, None
    while loop.step < num_steps:
        valid = min(chunk_steps, num_steps - loop.step)
        if shared is None and not feed.per_member:
            shared = feed.chunk(loop.step, chunk_steps, valid, None)
        collects = []
        for group in loop.groups:
            xs = shared
            if feed.per_member:
                xs = feed.chunk(loop.step, chunk_steps, valid, group.members_host)
            group.state, collect = dispatch(
                group.state, group.members, xs, loop.data, valid, **layout
            )
            collects.append((group, collect))
            loop.member_steps += group.real * valid
        loop.feed_position = feed.position()
        if pending is not None:
            _store(loop, *pending)
        pending = (collects, loop.step, valid)
        # While the devices work on this chunk, the host prepares the next one.
        shared = None
        following = min(chunk_steps, num_steps - loop.step - valid)
        if following > 0 and not feed.per_member:
            shared = feed.chunk(loop.step + valid, chunk_steps, following, None)
        if not pipelined:
            _store(loop, *pending)
            pending = None
        loop.step += valid
        loop.last_chunk = valid
        for group in list(loop.groups):
            _call(loop.hooks, "after_chunk", loop, group)
        _call(loop.hooks, "on_chunk_end", loop)
    if pending is not None:
        _store(loop, *pending)
    _call(loop.hooks, "on_end", loop)

    return FitResult(
        state=_every_member(loop, lambda g: g.state, lambda s: s.state),
        metrics=loop.metrics or {},
        members=loop.member_settings(),
        loop=loop,
    )


def _every_member(loop: Loop, of_group, of_stopped) -> PyTree:
    """A tree of every real member, training or stopped, in the order of the K members."""
    # On the host, then sliced: slicing device arrays costs a dispatch per leaf.
    parts = [
        jax.tree.map(lambda a, g=g: engine.to_host(a)[: g.real], of_group(g)) for g in loop.groups
    ]
    parts += [of_stopped(s) for s in loop.stopped]
    rows = np.concatenate([g.rows for g in loop.groups] + [s.rows for s in loop.stopped])
    order = np.argsort(rows, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        order = None

    def gather(*p):
        joined = engine.concatenate([engine.to_host(a) for a in p])
        return joined if order is None else joined[order]

    return jax.tree.map(gather, *parts)


def _store(loop: Loop, collects: list, step: int, valid: int) -> None:
    """Records the metrics of the chunk of ``valid`` steps from ``step`` (each group's
    ``collect()``, which waits for them)."""
    for group, collect in collects:
        metrics = collect()
        if loop.metrics is None:
            loop.metrics = {}
            for name, value in metrics.items():
                shape = (loop.num_members, loop.num_steps, *np.shape(value)[2:])
                fill = np.nan if np.issubdtype(value.dtype, np.inexact) else 0
                loop.metrics[name] = np.full(shape, fill, value.dtype)
        for name, value in metrics.items():
            host = engine.to_host(value)
            loop.metrics[name][group.rows, step : step + valid] = host[: group.real, :valid]


def _dispatch_sequential(program: engine.Vectorized):
    """:meth:`engine.Vectorized.run_sequential` shaped like ``dispatch`` (it waits anyway)."""

    def dispatch(*args, **kwargs):
        state, metrics = program.run_sequential(*args, **kwargs)
        return state, lambda: metrics

    return dispatch
