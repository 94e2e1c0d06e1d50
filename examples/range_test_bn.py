"""(c) A fastai-style LR range test in one call, on a CNN with BatchNorm and dropout, with its plot.

Run: ``python -m examples.range_test_bn`` (writes ``range_test_bn.png``; under a minute).

``lrjax.lr_finder.model_range_test`` takes the Flax module as it is: the batch statistics are model
state updated in training mode, dropout draws from each run's step key, and the runs (one per
seed) are members of one compiled program. Unlike ``Learner.lr_find`` nothing is mutated, so
there is no model to restore afterwards.
"""

from __future__ import annotations

import optax

import lrjax
from lrjax import lr_finder as rt
from lrjax import models, plotting


def main(quick: bool = False, out: str = "range_test_bn.png") -> dict:
    ds = lrjax.load_digits()
    model = models.ResNet(features=(4,)) if quick else models.ResNet()
    result = rt.model_range_test(
        model,
        optax.softmax_cross_entropy_with_integer_labels,
        (ds.x_train, ds.y_train),
        optimizer=optax.sgd,
        optimizer_hparams={"momentum": 0.9},
        start_lr=1e-4,
        end_lr=10.0,
        num_steps=30 if quick else 200,
        batch_size=64,
        seeds=(0, 1) if quick else (0, 1, 2),
    )
    suggestions = result.suggestions(skip_end=2 if quick else 5)
    ax = plotting.plot_range_test(
        result.learning_rates, result.loss, result.smoothed, result.valid,
        suggestions=suggestions, title="LR range test, ResNet with BatchNorm on digits",
    )  # fmt: skip
    path = plotting.save(ax, out)
    return {"result": result, "suggestions": suggestions, "figure": path}


if __name__ == "__main__":
    found = main()
    print({name: f"{lr:.3g}" for name, lr in found["suggestions"].items()}, found["figure"])
