"""A hook that stops a sweep when every member diverges on the same batch: a data error."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lrjax import engine, feeds, loop, supervised


class _SameStepDivergence:
    """Stops the run with an error when every member diverged at the same step with a
    non-finite loss or gradient (at step 0, before any update, for a single member too).

    Members with different hyperparameters do not blow up on the same batch by chance; a batch
    the model or the loss cannot handle (a log of zero, an overflow) does that to all of them.
    The error names the step and, where the batch can be read again (arrays, a batch
    function), the examples whose loss is non-finite with the parameters the step started from
    (those a diverged member keeps).
    """

    def __init__(self, task: supervised.Supervised):
        self.task = task

    def on_chunk_end(self, fit_loop: loop.Loop) -> None:
        steps = np.concatenate([
            np.asarray(engine.to_host(g.state.diverged_step))[: g.real] for g in fit_loop.groups
        ])  # fmt: skip
        if (steps < 0).any() or (steps != steps[0]).any():
            return
        # The members still training (successive halving may have stopped others).
        rows = np.concatenate([g.rows for g in fit_loop.groups])
        t, k = int(steps[0]), len(rows)
        if k < 2 and t > 0:
            return  # one member's divergence may be its learning rate's doing
        metrics = fit_loop.metrics
        bad = ~np.isfinite(metrics["loss"][rows, t]) | ~np.isfinite(metrics["grad_norm"][rows, t])
        if not bad.all():
            return
        when = "at the first step, before any update" if t == 0 else f"all {k} members at once"
        raise ValueError(
            f"every member's training loss or gradient was non-finite at step {t} ({when}, so "
            f"not because of their hyperparameters): the batch of step {t} likely holds data the "
            f"model or the loss cannot handle; {self._examples(fit_loop, t)}. Pass "
            "options=sweep.Options(check_data=False) to get the diverged result back instead"
        )

    def _examples(self, fit_loop: loop.Loop, t: int) -> str:
        """Which examples of the batch of step ``t`` give a non-finite loss (member 0)."""
        feed, group = fit_loop.feed, fit_loop.groups[0]
        if isinstance(feed, feeds.ArrayFeed):
            seed = feed.seed
            if feed.per_member:
                seed = int(np.asarray(feed.seed(group.members_host)).reshape(-1)[0])
            rows = feeds.batch_indices_np(seed, t, 1, feed.num_examples, feed.batch_size)[0]
            x, y = (np.asarray(a[rows]) for a in feed.arrays)
            name = lambda i: f"example {rows[i]} of the data"  # noqa: E731
        elif isinstance(feed, feeds.FunctionFeed):
            x, y = feed.fn(t)
            name = lambda i: f"example {i} of that batch"  # noqa: E731
        else:
            return "an iterator's batches cannot be read again to find the examples"
        inner = engine.unwrap(engine.member_slice(group.state, 0))
        outputs = self.task.model.eval_outputs(inner.params, inner.model_state, jnp.asarray(x))
        finite = np.isfinite(np.asarray(self.task.loss(outputs, jnp.asarray(y))))
        if finite.all():
            return (
                "every example's loss is finite in evaluation mode with the parameters the step "
                "started from, so a training-mode layer (batch statistics, dropout) may be the "
                "cause"
            )
        if not finite.any():
            return "every example of that batch gives a non-finite loss"
        listed = [name(int(i)) for i in np.flatnonzero(~finite)[:5]]
        return f"a non-finite loss comes from {', '.join(listed)}"
