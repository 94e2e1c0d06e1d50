"""Fingerprints of functions and settings: what determines the program they trace to.

``jax.jit`` and ``functools.lru_cache`` key on identity, so a closure built afresh for every
call (``optimizer_kwargs=lambda hp: {...}``, ``Model.from_nnx(MLP)``) compiles again although it
traces to the same program. :func:`fingerprint` keys on what the function computes instead:

* a function nested in another or a lambda: its code (bytecode, constants, names, nested
  code), defaults, the values in its closure cells and the globals its code names, each
  fingerprinted in turn; a function reachable by its module and qualified name (``optax.sgd``,
  a module-level ``def``) by identity;
* a function may declare what determines it in ``__lrjax_fingerprint__`` (what
  :meth:`lrjax.Model.from_nnx` does: its closures are fixed by the factory);
* numbers and strings by value (floats exactly, by ``float.hex``); arrays by dtype, shape and a
  hash of their bytes; tuples, lists, dicts and sets by their items; ``functools.partial`` by
  its function and arguments; dataclasses and NamedTuples by their type and fields; modules by
  name;
* anything else by identity. Each such object is kept alive with the key (``pinned``), so its
  id cannot be reused by another object while the key is cached: an unknown object never
  produces a false match, only a missed one.

:func:`stable_digest` is the same description made to hold across processes, for checkpoint
identity: an object is named by its module and qualified name instead of its address, a
function of the user's own code also by its code, sets in sorted order; an object with neither
a name nor an address-free ``repr`` is reported as not describable, so the caller can ask for an
explicit name. :func:`data_digest` is a cheap content hash of training data.

Like ``jax.jit``, a cache keyed on a fingerprint cannot see state hidden inside an object it
identifies by identity (mutate such an object and the cached program stays); :func:`cache`
re-fingerprints the cached arguments on every hit, so a closure whose captured numbers, arrays
or containers changed since is compiled afresh.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import re
import sys
import types
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import numpy as np

_SCALARS = (type(None), bool, int, str, bytes)


# Packages whose functions are named, not read: their code changes only with their version.
_LIBRARIES = frozenset({"jax", "jaxlib", "optax", "flax", "chex", "numpy", "lrjax", "orbax"})
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


class _Fingerprinter:
    """``stable=False``: keys for an in-process cache (unknown objects by address).
    ``stable=True``: keys that hold across processes; unknown objects go to ``unstable``."""

    def __init__(self, stable: bool = False):
        self.stable = stable
        self.pinned: list[Any] = []
        self.unstable: list[Any] = []
        self._active: dict[int, int] = {}  # objects being fingerprinted, for cycles

    def identity(self, obj: Any) -> Hashable:
        if self.stable:
            return self._name(obj)
        self.pinned.append(obj)
        return ("id", type(obj).__qualname__, id(obj))

    def _name(self, obj: Any) -> Hashable:
        """What names ``obj`` in any process: its module and qualified name (and, for a
        function of the user's own code, that code), or an address-free ``repr``."""
        module_name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if isinstance(module_name, str) and isinstance(qualname, str):
            module = sys.modules.get(module_name)
            if module is not None and _resolve(module, qualname) is obj:
                own = module_name.split(".")[0] not in _LIBRARIES
                return ("named", module_name, qualname, self._body(obj) if own else None)
        nnx = sys.modules.get("flax.nnx")
        if nnx is not None and isinstance(obj, nnx.Module):  # an instance: its type and values
            return ("nnx", self._name(type(obj)), self(nnx.to_pure_dict(nnx.state(obj))))
        text = repr(obj)
        if _ADDRESS.search(text) is None:
            return ("repr", type(obj).__module__, type(obj).__qualname__, text)
        self.unstable.append(obj)
        return ("unstable", type(obj).__qualname__)

    def __call__(self, obj: Any) -> Hashable:
        if isinstance(obj, _SCALARS):
            return (type(obj).__name__, obj)
        if isinstance(obj, float):
            return ("float", obj.hex())
        if isinstance(obj, complex):
            return ("complex", obj.real.hex(), obj.imag.hex())
        if isinstance(obj, np.ndarray | np.generic | jax.Array):
            return _array(obj) if not isinstance(obj, jax.core.Tracer) else self.identity(obj)
        if isinstance(obj, types.ModuleType):
            return ("module", obj.__name__)
        if id(obj) in self._active:
            return ("cycle", self._active[id(obj)])
        self._active[id(obj)] = len(self._active)
        try:
            return self._compound(obj)
        finally:
            del self._active[id(obj)]

    def _compound(self, obj: Any) -> Hashable:
        declared = getattr(obj, "__lrjax_fingerprint__", None)
        if declared is not None and callable(obj):
            return ("declared", self(declared))
        if isinstance(obj, types.FunctionType):
            return self._function(obj)
        if isinstance(obj, types.MethodType):
            return ("method", self(obj.__func__), self(obj.__self__))
        if isinstance(obj, functools.partial):
            return ("partial", self(obj.func), self(obj.args), self(obj.keywords))
        if isinstance(obj, types.CodeType):
            return self._code(obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple
            return ("namedtuple", self.identity(type(obj)), tuple(self(v) for v in obj))
        if type(obj) in (tuple, list):
            return (type(obj).__name__, tuple(self(v) for v in obj))
        if type(obj) is dict:
            return ("dict", tuple((self(k), self(v)) for k, v in obj.items()))
        if type(obj) in (set, frozenset):
            items = [self(v) for v in obj]
            # str hashes differ between processes, so a stable key lists the items in order.
            return ("set", tuple(sorted(items, key=repr)) if self.stable else frozenset(items))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = tuple(
                (f.name, self(getattr(obj, f.name, None))) for f in dataclasses.fields(obj)
            )
            return ("dataclass", self.identity(type(obj)), fields)
        return self.identity(obj)

    def _body(self, obj: Any) -> Hashable:
        """The code of a function, or of the functions a class defines (the user's own code
        may change between two runs under the same name)."""
        if isinstance(obj, type):
            return tuple(
                (name, self._code(v.__code__))
                for name, v in sorted(vars(obj).items())
                if isinstance(v, types.FunctionType)
            )
        code = getattr(obj, "__code__", None)
        return self._code(code) if isinstance(code, types.CodeType) else None

    def _function(self, fn: types.FunctionType) -> Hashable:
        module = sys.modules.get(getattr(fn, "__module__", None) or "")
        if module is not None and _resolve(module, fn.__qualname__) is fn:
            return self.identity(fn)  # a named function: the same object, the same program
        cells = tuple(self(_cell_contents(c)) for c in fn.__closure__ or ())
        names = _global_names(fn.__code__)
        referenced = tuple(
            (name, self(fn.__globals__[name])) for name in sorted(names) if name in fn.__globals__
        )
        return (
            "function",
            self._code(fn.__code__),
            self(fn.__defaults__),
            self(fn.__kwdefaults__),
            cells,
            referenced,
        )

    def _code(self, code: types.CodeType) -> Hashable:
        consts = tuple(
            self._code(c) if isinstance(c, types.CodeType) else self(c) for c in code.co_consts
        )
        return (
            "code",
            code.co_name,
            code.co_code,
            consts,
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags,
            getattr(code, "co_exceptiontable", b""),
        )


_EMPTY_CELL = object()


def _cell_contents(cell) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet assigned
        return _EMPTY_CELL


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _resolve(module: types.ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _array(a: Any) -> Hashable:
    if hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(a))
        return ("key", impl, _array(jax.random.key_data(a)))
    host = np.ascontiguousarray(np.asarray(a))
    return ("array", host.dtype.str, host.shape, _hex(host.view(np.uint8).reshape(-1)))


def fingerprint(obj: Any) -> tuple[Hashable, list[Any]]:
    """``(key, pinned)``: a hashable key of what ``obj`` computes, and the objects the key
    identifies by identity (keep them alive as long as the key is used).

    Examples:
      >>> make = lambda m: (lambda hp: {"momentum": m})
      >>> fingerprint(make(0.9))[0] == fingerprint(make(0.9))[0]
      True
      >>> fingerprint(make(0.9))[0] == fingerprint(make(0.5))[0]
      False
    """
    fingerprinter = _Fingerprinter()
    key = fingerprinter(obj)
    return key, fingerprinter.pinned


def stable_digest(obj: Any) -> tuple[str, list[Any]]:
    """``(digest, undescribed)``: a hex digest of what ``obj`` computes that is the same in
    every process (functions by code, closure values and globals; named functions and types by
    module and qualified name; arrays by content), and the objects found inside it that have no
    such description (no importable name, a ``repr`` holding an address). The digest is
    reliable only when ``undescribed`` is empty.

    Examples:
      >>> import functools, optax
      >>> a, _ = stable_digest(functools.partial(optax.sgd, momentum=0.9))
      >>> b, _ = stable_digest(functools.partial(optax.sgd, momentum=0.5))
      >>> a == stable_digest(functools.partial(optax.sgd, momentum=0.9))[0], a == b
      (True, False)
    """
    fingerprinter = _Fingerprinter(stable=True)
    key = fingerprinter(obj)
    return _hex(repr(key).encode()), fingerprinter.unstable


# Arrays up to this many bytes are hashed whole; larger ones (and memmaps, read lazily from
# disk) by a strided sample of about this many elements, plus their sum when in memory.
_WHOLE_BYTES = 1 << 28
_SAMPLE_ELEMENTS = 1 << 18


def data_digest(arrays: Any) -> str:
    """A content hash of a pytree of arrays: shapes, dtypes and bytes (for arrays over 256 MiB
    a strided sample and the sum; for a ``numpy.memmap`` the sample alone, so it is never read
    whole). Equal data gives equal digests in any process; changed values almost always change
    it (a change that misses the sample of a large memmap does not).

    Examples:
      >>> import numpy as np
      >>> x = np.arange(12.0).reshape(3, 4)
      >>> data_digest((x, np.arange(3))) == data_digest((x.copy(), np.arange(3)))
      True
      >>> data_digest((x + 1e-6, np.arange(3))) == data_digest((x, np.arange(3)))
      False
    """
    parts = []
    for a in jax.tree.leaves(arrays):
        whole = not isinstance(a, np.memmap) and (
            jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) or a.nbytes <= _WHOLE_BYTES
        )
        if whole:
            parts.append(_array(a))
            continue
        stride = max(1, a.size // _SAMPLE_ELEMENTS)
        sample = np.asarray(a.reshape(-1)[::stride])
        # A memmap is summed only in its sample: the whole file may not fit in memory.
        total = None if isinstance(a, np.memmap) else float(np.asarray(a.sum(dtype=np.float32)))
        sampled = ("sampled", np.dtype(a.dtype).str, tuple(a.shape), stride, _array(sample))
        parts.append((*sampled, total))
    return _hex(repr(parts).encode())


def _hex(data: Any) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclasses.dataclass
class _Entry:
    value: Any
    args: tuple
    pinned: list


def cache(maxsize: int) -> Callable[[Callable], Callable]:
    """Like ``functools.lru_cache(maxsize)``, keyed on the :func:`fingerprint` of the
    arguments (positional only). A hit whose cached arguments no longer have the key they were
    stored under (a captured container was mutated since) is computed afresh."""

    def decorate(fn: Callable) -> Callable:
        entries: collections.OrderedDict[Hashable, _Entry] = collections.OrderedDict()

        @functools.wraps(fn)
        def cached(*args):
            key, pinned = fingerprint(args)
            entry = entries.get(key)
            if entry is not None and fingerprint(entry.args)[0] == key:
                entries.move_to_end(key)
                return entry.value
            value = fn(*args)
            entries[key] = _Entry(value, args, pinned)
            entries.move_to_end(key)
            while len(entries) > maxsize:
                entries.popitem(last=False)
            return value

        cached.cache_clear = entries.clear  # type: ignore[attr-defined]
        cached.cache_len = lambda: len(entries)  # type: ignore[attr-defined]
        return cached

    return decorate


def describe_run(parts: Mapping[str, Any], run_id_key: str | None = None) -> dict[str, Any]:
    """The description of a run that a checkpoint keeps and compares: every part as it is
    when it is JSON (numbers, strings, lists, dicts), else its :func:`stable_digest`.

    A part with no description that holds in a new process (an object with no importable name
    whose ``repr`` holds a memory address) is refused, naming it, unless ``parts[run_id_key]``
    names the run: it then stands in for that part.

    Examples:
      >>> import numpy as np
      >>> run = describe_run({"lr": 0.1, "data": np.arange(3)})
      >>> run["lr"], len(run["data"])
      (0.1, 32)
    """
    described: dict[str, Any] = {}
    undescribed: dict[str, str] = {}
    for name, value in parts.items():
        try:
            text = json.dumps(value, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            text = None
        if text is not None:
            described[name] = json.loads(text)
            continue
        digest, unknown = stable_digest(value)
        described[name] = digest if not unknown else f"named by {run_id_key}"
        if unknown:
            undescribed[name] = type(unknown[0]).__name__
    named = run_id_key is not None and isinstance(parts.get(run_id_key), str)
    if undescribed and not named:
        listed = ", ".join(f"{name} (a {kind})" for name, kind in undescribed.items())
        raise ValueError(
            f"a checkpoint needs a description of the run that holds in a new process, but "
            f"{listed} has none (no importable name, and its repr holds a memory address); "
            f"name the run instead: a {run_id_key!r} entry (lrjax.sweep: "
            "options.checkpoint_id='<a name for this run>'), changed whenever that object changes"
        )
    return described
