"""Schedules by name: :data:`SCHEDULES`, :func:`get` (lrjax's names and Hugging Face's) and
:func:`names_table`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lrjax.schedules._cycles import cyclic, one_cycle, one_cycle_momentum, sgdr, snapshot_ensemble
from lrjax.schedules._decays import (
    constant,
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    invscaling,
    linear,
    multistep_decay,
    optimal,
    piecewise_constant,
    polynomial_decay,
    step_decay,
    tanh_decay,
)
from lrjax.schedules._hugging_face import (
    _HF_DURATION_ARGS,
    _HF_MARKERS,
    _HF_SCHEDULES,
    _hf_steps,
)
from lrjax.schedules._recipes import (
    cosine_with_hard_restarts,
    inverse_sqrt,
    timm_cosine,
    warmup_cosine_decay,
    warmup_linear_decay,
    warmup_stable_decay,
)
from lrjax.schedules._steps import (
    Schedule,
    to_steps,
)

# --------------------------------------------------------------------------------------------
# Lookup by name.
# --------------------------------------------------------------------------------------------

SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "linear": linear,
    "step": step_decay,
    "multistep": multistep_decay,
    "piecewise_constant": piecewise_constant,
    "exponential": exponential_decay,
    "inverse_time": inverse_time_decay,
    "invscaling": invscaling,
    "optimal": optimal,
    "polynomial": polynomial_decay,
    "cosine": cosine_decay,
    "sgdr": sgdr,
    "cyclic": cyclic,
    "one_cycle": one_cycle,
    "warmup_linear_decay": warmup_linear_decay,
    "warmup_cosine_decay": warmup_cosine_decay,
    "cosine_with_hard_restarts": cosine_with_hard_restarts,
    "inverse_sqrt": inverse_sqrt,
    "wsd": warmup_stable_decay,
    "snapshot_ensemble": snapshot_ensemble,
    "tanh": tanh_decay,
    "one_cycle_momentum": one_cycle_momentum,
    "timm_cosine": timm_cosine,
}
_BY_NAME = {**SCHEDULES, **{factory.__name__: factory for factory in SCHEDULES.values()}}

# Arguments that are durations (or sequences of them) and so may be given as fractions.
_DURATION_ARGS = frozenset(
    {
        "transition_steps",
        "transition_begin",
        "step_size",
        "milestones",
        "boundaries",
        "decay_steps",
        "first_period",
        "step_size_up",
        "step_size_down",
        "warmup_steps",
        "timescale",
        "t_initial",
        "warmup_t",
        "noise_range_t",
    }
)


def _arguments(build: Callable[..., Any], hide: frozenset[str] = frozenset()) -> list[str]:
    """``name`` or ``name=default`` for each argument of ``build``, in order."""
    out = []
    for p in inspect.signature(build).parameters.values():
        if p.name in hide or p.kind is p.VAR_KEYWORD:
            continue
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return out


def _resolve(name: str, kwargs: dict[str, Any]) -> tuple[Callable[..., Schedule], bool]:
    """The builder for ``name`` (HF's or lrjax's) and whether it is Hugging Face's."""
    hf = _HF_SCHEDULES.get(name)
    factory = _BY_NAME.get(name)
    if hf is None and factory is None:
        raise ValueError(f"name must be one of {sorted({*_BY_NAME, *_HF_SCHEDULES})}, got {name!r}")
    if hf is not None and (factory is None or not _HF_MARKERS.isdisjoint(kwargs)):
        return hf[0], True
    return factory, False


def get(name: str, *, total_steps: int | None = None, **kwargs: Any) -> Schedule:
    """Builds a schedule by name: lrjax's names, and Hugging Face's with HF's semantics.

    ``name`` is one of:

    * a short key of :data:`SCHEDULES` (``"cosine"``, ``"wsd"``, ...) or a factory's own name
      (``"cosine_decay"``, ``"warmup_stable_decay"``, ...), taking that factory's arguments;
    * a Hugging Face ``transformers`` scheduler name (``SchedulerType``: ``"linear"``,
      ``"cosine"``, ``"cosine_with_restarts"``, ``"polynomial"``, ``"constant"``,
      ``"constant_with_warmup"``, ``"inverse_sqrt"``, ``"cosine_with_min_lr"``,
      ``"cosine_warmup_with_min_lr"``, ``"warmup_stable_decay"``), taking HF's argument names
      (the peak as ``learning_rate``, ``num_warmup_steps``, ``num_training_steps`` and the
      extras of HF's ``scheduler_specific_kwargs``) and giving HF's schedule: the LR of HF's
      ``LambdaLR`` after ``t`` calls of ``scheduler.step()``. ``"reduce_lr_on_plateau"`` is
      not a schedule and raises, pointing to :func:`lrjax.reduce_on_plateau`.

    Where a name is both (``linear``, ``cosine``, ``polynomial``, ``constant``,
    ``inverse_sqrt``, ``warmup_stable_decay``), the arguments decide: any of HF's
    ``learning_rate``, ``num_warmup_steps``, ``num_training_steps`` (which no lrjax factory
    takes) selects HF's schedule, otherwise lrjax's factory. So ``get("linear",
    learning_rate=..., num_warmup_steps=..., num_training_steps=...)`` is HF's warmup and
    linear decay, while ``get("linear", init_value=..., end_value=..., transition_steps=...)``
    stays :func:`linear`. ``names_table()`` lists every name with its arguments.

    Every duration argument of an lrjax name (``warmup_steps``, ``decay_steps``,
    ``step_size``, ``milestones``, ...) may be an int number of steps or a float fraction in
    ``[0, 1]`` of ``total_steps``, rounded half up (:func:`to_steps`); ``total_steps`` is also
    passed on to factories that take it. Hugging Face names read their step counts
    (``num_warmup_steps``, ``num_decay_steps``, ``num_stable_steps``, ``timescale``) as HF's
    ``TrainingArguments`` reads ``warmup_steps``: a float in ``[0, 1)`` is a ratio of
    ``num_training_steps`` rounded up, a whole float such as ``500.0`` is that many steps
    (other floats are refused; HF truncates them); ``total_steps`` stands for
    ``num_training_steps`` when it is not given. As in HF's ``get_scheduler``, ``constant``
    accepts and ignores ``num_warmup_steps`` and ``num_training_steps``, and
    ``num_warmup_steps >= num_training_steps`` gives HF's schedule (``linear``: the warmup,
    then 0) rather than an error.

    Args:
      name: an lrjax or Hugging Face schedule name.
      total_steps: the run length that fractions refer to.
      **kwargs: the schedule's other arguments.

    Returns:
      The schedule.

    Raises:
      ValueError: for an unknown name, or an unknown or missing argument (the message lists
        the arguments the name accepts), and for any invalid argument value.

    Examples:
      >>> import lrjax
      >>> schedule = lrjax.get("multistep", total_steps=1000, init_value=1.0,
      ...                      milestones=[0.5, 0.75], gamma=0.1)
      >>> [round(float(schedule(t)), 6) for t in (499, 500, 750)]
      [1.0, 0.1, 0.01]
      >>> hf = lrjax.get("linear", learning_rate=1.0, num_warmup_steps=10,
      ...                num_training_steps=110)
      >>> [round(float(hf(t)), 6) for t in (5, 10, 60, 110)]
      [0.5, 1.0, 0.5, 0.0]
    """
    build, is_hf = _resolve(name, kwargs)
    kwargs = dict(kwargs)
    if is_hf and total_steps is not None:
        if kwargs.setdefault("num_training_steps", total_steps) != total_steps:
            raise ValueError(
                f"total_steps={total_steps!r} and num_training_steps="
                f"{kwargs['num_training_steps']!r} disagree; give one of them"
            )
    params = inspect.signature(build).parameters
    hidden = frozenset() if is_hf else frozenset({"total_steps"})
    accepted = [
        p for p in params if p not in hidden and params[p].kind is not params[p].VAR_KEYWORD
    ]
    required = [p for p in accepted if params[p].default is params[p].empty]
    unknown = sorted(set(kwargs) - set(accepted))
    missing = [p for p in required if p not in kwargs]
    if (unknown or missing) and name != "reduce_lr_on_plateau":
        raise ValueError(_arguments_message(name, is_hf, unknown, missing))
    total = kwargs.get("num_training_steps") if is_hf else total_steps
    for key, value in kwargs.items():
        if key not in (_HF_DURATION_ARGS if is_hf else _DURATION_ARGS) or value is None:
            continue
        if is_hf:
            kwargs[key] = _hf_steps(value, total, key)
        elif isinstance(value, list | tuple):
            kwargs[key] = [to_steps(v, total, f"each of {key}") for v in value]
        else:
            kwargs[key] = to_steps(value, total, key)
    if not is_hf and "total_steps" in params:
        kwargs["total_steps"] = total_steps
    return build(**kwargs)


def _arguments_message(name: str, is_hf: bool, unknown: list[str], missing: list[str]) -> str:
    problems = []
    if unknown:
        problems.append(f"unknown argument(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing argument(s) {', '.join(missing)}")
    forms = []
    if name in _HF_SCHEDULES:
        forms.append(f"Hugging Face's ({', '.join(_arguments(_HF_SCHEDULES[name][0]))})")
    if name in _BY_NAME:
        factory = _BY_NAME[name]
        forms.append(f"lrjax {factory.__name__}'s ({', '.join(_arguments(factory))})")
    chosen = "Hugging Face's" if is_hf else "lrjax's"
    return (
        f"get({name!r}) as {chosen} schedule: {'; '.join(problems)}. {name!r} accepts "
        + " or ".join(forms)
        + (
            "; HF's learning_rate / num_warmup_steps / num_training_steps select HF's form"
            if len(forms) == 2
            else ""
        )
    )


def names_table() -> str:
    """A Markdown table of every name :func:`get` accepts, its meaning and its arguments.

    ``docs/schedule_names.md`` holds this text (a test checks they agree); regenerate it with
    ``python -c "from lrjax import schedules as s; open('docs/schedule_names.md', 'w')
    .write(s.names_table())"``.

    Returns:
      The Markdown text, ending with a newline.

    Examples:
      >>> from lrjax import schedules
      >>> print(schedules.names_table().splitlines()[0])
      # Schedule names accepted by `lrjax.get`
    """

    def args(build, hide=frozenset()):
        return ", ".join(f"`{a}`" for a in _arguments(build, hide))

    rows = []
    for name, factory in _BY_NAME.items():
        rows.append((name, 1, "lrjax", f"`{factory.__name__}`", args(factory), ""))
    for name, (build, hf_function, built_with, note) in _HF_SCHEDULES.items():
        arguments = "" if name == "reduce_lr_on_plateau" else args(build)
        rows.append((name, 0, f"Hugging Face `{hf_function}`", f"`{built_with}`", arguments, note))
    lines = [
        "# Schedule names accepted by `lrjax.get`",
        "",
        "<!-- Generated by lrjax.schedules.names_table(); "
        "tests/schedules_registry_test.py checks it. -->",
        "",
        "`lrjax.get(name, total_steps=None, **kwargs)` builds a schedule by name. Hugging Face "
        "names take HF's argument names and give HF's schedule (the LR after `t` calls of "
        "`scheduler.step()`). Where a name is both HF's and lrjax's, the arguments decide: "
        "`learning_rate`, `num_warmup_steps` or `num_training_steps` select HF's form, "
        "otherwise lrjax's factory. Float step counts: for lrjax names a duration may be "
        "steps (int) or a fraction (float in [0, 1]) of `total_steps`, rounded half up "
        "(`lrjax.to_steps`); for HF names `num_warmup_steps`, `num_decay_steps`, "
        "`num_stable_steps` and `timescale` are read as HF's `TrainingArguments` reads "
        "`warmup_steps`: a float in [0, 1) is a ratio of `num_training_steps` rounded up "
        "(`math.ceil`), a whole float (`500.0`) is that many steps, other floats are a "
        "`ValueError` (HF truncates them). `total_steps` stands in for `num_training_steps` "
        "when it is not given. An unknown or missing argument is a `ValueError` listing the "
        "accepted ones.",
        "",
        "| Name | Meaning | Built with | Arguments | Notes |",
        "|---|---|---|---|---|",
    ]
    for name, _, meaning, built_with, arguments, note in sorted(rows):
        lines.append(f"| `{name}` | {meaning} | {built_with} | {arguments} | {note} |")
    return "\n".join(lines) + "\n"
