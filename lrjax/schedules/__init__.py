"""Learning-rate schedules as pure, jit- and vmap-compatible functions of the step.

Every factory here validates its static arguments (step counts, boundaries, numbers of
cycles, mode names) when the schedule is built, and returns a closure ``schedule(step) -> lr``
typed as :data:`optax.Schedule`, so it drops into ``optax.sgd``, ``optax.adamw``,
``optax.inject_hyperparams`` and ``optax.join_schedules`` unchanged.

Conventions shared by all schedules:

* ``step`` is optax's update count: ``schedule(t)`` is the learning rate used by the update
  at optimizer count ``t`` (``t = 0`` for the first update). In PyTorch terms it is the LR
  after ``t`` calls of ``scheduler.step()``. Python ints (also beyond int32), integer arrays
  and float arrays are accepted, and negative steps count as 0. A concrete step that is NaN or
  infinite raises ``ValueError`` (a traced one cannot be inspected).
* Integer steps stay exact at every step: positions inside periods, cycles and staircases
  (cyclic, SGDR's restarts for any ``period_mult``, snapshot ensembles, :func:`repeat`, Keras'
  cyclic polynomial, hard restarts, step and staircase decays), boundaries (milestones, joins,
  warmups) and the steps left before an end are computed in integer arithmetic before any
  float cast: Python and NumPy integers on the host at any size, JAX integer arrays in their
  own dtype (int32 under the default JAX config, the dtype of optax's count; int64 under
  ``jax_enable_x64``). The rest of the formula then runs in float32, which holds every integer
  only below 2**24. Float steps are used as float32 (the documented float32 path).
* Step counts and boundaries are integers below 2**63, beyond int32 too; a larger one is a
  ``ValueError`` when the schedule is built. Flags are ``True`` or ``False`` (a string is a
  ``ValueError``), and arguments that take a schedule check that it is callable.
* Magnitudes (initial, peak, final and floor values, decay rates, ``gamma``, factors, powers)
  are traced: they never reach a Python ``if``, so ``jax.vmap`` over any of them works. A
  concrete magnitude (a Python, NumPy or concrete JAX number) is validated when the schedule
  is built: it must be a finite real scalar in the range its formula needs (learning rates
  ``>= 0``, decay factors ``> 0``, ...; each factory's Args give the range). Only a traced
  value skips the check. A vector of magnitudes outside ``vmap`` is an error: build the
  schedule inside ``jax.vmap`` (or :mod:`lrjax.sweep`) over the value instead.
* Durations are integers (steps). Factories that take ``total_steps`` also accept their other
  durations as fractions of it (floats in ``[0, 1]``), converted by :func:`to_steps`.
* The result is float32.

The package keeps one concept per module: ``_steps`` (step arithmetic and static checks),
``_decays``, ``_cycles`` (restarts and cycles), ``_compose`` (join, multiply, scale, clip,
repeat, warmup, SWA hand-over, LR noise, family switch), ``_recipes`` (warmup + decay recipes,
timm's cosine), ``_registry`` (lookup by name) and ``_hugging_face`` (Hugging Face's scheduler
names for :func:`get`).
"""

from lrjax.schedules._compose import (
    clip,
    join,
    lr_noise,
    multiply,
    repeat,
    scale,
    schedule_family_switch,
    swa_schedule,
    warmup,
)
from lrjax.schedules._cycles import (
    cyclic,
    one_cycle,
    one_cycle_momentum,
    sgdr,
    snapshot_ensemble,
    snapshot_steps,
)
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
from lrjax.schedules._recipes import (
    cosine_with_hard_restarts,
    inverse_sqrt,
    timm_cosine,
    warmup_cosine_decay,
    warmup_cosine_fraction,
    warmup_linear_decay,
    warmup_stable_decay,
)
from lrjax.schedules._registry import SCHEDULES, get, names_table
from lrjax.schedules._steps import Schedule as Schedule  # the type of every factory's result
from lrjax.schedules._steps import to_steps

__all__ = [
    "SCHEDULES",
    "clip",
    "constant",
    "cosine_decay",
    "cosine_with_hard_restarts",
    "cyclic",
    "exponential_decay",
    "get",
    "inverse_sqrt",
    "inverse_time_decay",
    "invscaling",
    "join",
    "linear",
    "lr_noise",
    "multiply",
    "multistep_decay",
    "names_table",
    "one_cycle",
    "one_cycle_momentum",
    "optimal",
    "piecewise_constant",
    "polynomial_decay",
    "repeat",
    "scale",
    "schedule_family_switch",
    "sgdr",
    "snapshot_ensemble",
    "snapshot_steps",
    "step_decay",
    "swa_schedule",
    "tanh_decay",
    "timm_cosine",
    "to_steps",
    "warmup",
    "warmup_cosine_decay",
    "warmup_cosine_fraction",
    "warmup_linear_decay",
    "warmup_stable_decay",
]
