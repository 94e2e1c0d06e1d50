"""Tests for lrjax.tables: SweepResult and FitResult as pandas tables, every member setting a
column."""

import sys

import numpy as np
import pandas as pd
import pytest

import lrjax
from tests.helpers import EVAL, STEPS
from tests.hooks_test import LINEAR_MEMBERS, linear_eval, linear_fit
from tests.sweep_result_test import bn_result


def per_member(table, k, column):
    return table[table["member"] == k][column].to_numpy()


def test_a_sweep_as_a_table_of_steps_evaluations_and_final_values():
    result = bn_result()
    k = result.num_members
    steps = result.to_dataframe()
    assert len(steps) == k * STEPS
    assert list(steps.columns[:3]) == ["member", "step", "learning_rate"]
    for m in range(k):
        np.testing.assert_array_equal(per_member(steps, m, "step"), np.arange(STEPS))
        np.testing.assert_array_equal(per_member(steps, m, "loss"), result.loss[m])
        np.testing.assert_array_equal(per_member(steps, m, "grad_norm"), result.grad_norm[m])
        used = per_member(steps, m, "opt_hparams/learning_rate")
        np.testing.assert_array_equal(used, result.learning_rate[m])
        np.testing.assert_array_equal(
            per_member(steps, m, "learning_rate"),
            np.repeat(result.hparams["learning_rate"][m], STEPS),
        )
    evaluations = result.to_dataframe("evaluations")
    assert len(evaluations) == k * len(result.eval_steps)
    for m in range(k):
        np.testing.assert_array_equal(per_member(evaluations, m, "step"), result.eval_steps)
        np.testing.assert_array_equal(
            per_member(evaluations, m, "eval/loss"), result.eval_metrics["loss"][m]
        )
    final = result.to_dataframe("final")
    assert len(final) == k
    np.testing.assert_array_equal(final["learning_rate"], result.hparams["learning_rate"])
    np.testing.assert_array_equal(final["loss"], result.loss[:, -1])
    np.testing.assert_array_equal(final["eval/loss"], result.eval_metrics["loss"][:, -1])
    np.testing.assert_array_equal(final["diverged"], result.diverged)
    assert final["diverged"].tolist() == [False, False, True]  # the 1e4 member diverged


def test_a_fit_result_of_a_users_step_as_a_table_with_its_member_settings():
    out = linear_fit([lrjax.hooks.Evaluate(linear_eval, EVAL)])
    steps = out.to_dataframe()
    assert list(steps.columns) == ["member", "step", "lr", "hparams/learning_rate", "loss"]
    for m, lr in enumerate(LINEAR_MEMBERS["lr"]):
        np.testing.assert_array_equal(per_member(steps, m, "lr"), np.repeat(lr, STEPS))
        np.testing.assert_array_equal(per_member(steps, m, "loss"), out.metrics["loss"][m])
    final = out.to_dataframe("final")
    np.testing.assert_array_equal(final["eval/loss"], out.loop.evaluations["loss"][:, -1])
    evaluations = out.to_dataframe("evaluations")
    assert evaluations["step"].tolist() == list(out.loop.eval_steps) * 3
    assert isinstance(steps, pd.DataFrame)


def test_a_table_needs_a_known_kind_and_pandas(monkeypatch):
    result = bn_result()
    with pytest.raises(
        ValueError, match=r"kind must be one of \('steps', 'evaluations', 'final'\)"
    ):
        result.to_dataframe("members")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(
        ImportError, match=r"to_dataframe needs pandas: pip install 'lrjax\[pandas\]'"
    ):
        result.to_dataframe()
