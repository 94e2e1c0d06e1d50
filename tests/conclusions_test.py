"""Each report's conclusion is chosen from the numbers: opposite summaries flip the sentence.

The sentences are pure functions of a part's config and `summary.json`, so these tests feed
hand-made summaries (no training) and check that the verdict follows them and that the noise
level it is judged against is stated.
"""

import copy

from experiments import (
    batch_size,
    configs,
    optimizers,
    plateau,
    range_test,
    schedule_comparison,
    search,
    snapshots,
)


def _family(val, val_std=0.002, test=None):
    test = val if test is None else test
    return {"best_lr": 0.1, "val_acc_mean": val, "val_acc_std": val_std,
            "test_acc_mean": test, "test_acc_std": 0.004}  # fmt: skip


def _model(families):
    ranking = sorted(families, key=lambda f: -families[f]["val_acc_mean"])
    return {"families": families, "ranking": ranking, "seeds": [0, 1, 2], "val_examples": 500}


def test_schedule_comparison_calls_a_winner_only_beyond_the_noise():
    clear = schedule_comparison.conclusion(
        _model({"cosine": _family(0.95), "constant": _family(0.90), "wsd": _family(0.89)})
    )
    close = schedule_comparison.conclusion(
        _model({"cosine": _family(0.95), "constant": _family(0.949), "wsd": _family(0.89)})
    )
    assert "it is the best family here" in clear and "No family is clearly best" not in clear
    assert "**No family is clearly best**" in close and "best family here" not in close
    assert "Families within the noise of the best: cosine (to 0), constant." in close
    # the noise: the larger seed std of the two, at least one of 500 examples (0.2 points)
    assert "within the noise (0.2 points)" in close and "500 validation examples" in close
    noisy = schedule_comparison.conclusion(
        _model({"cosine": _family(0.95, 0.03), "constant": _family(0.93), "wsd": _family(0.8)})
    )
    assert "within the noise (3.0 points)" in noisy


def _opt(const, sched, std=0.002):
    def entry(v):
        return {"best_lr": 0.1, "val_acc_mean": v, "val_acc_std": std, "test_acc_mean": v,
                "test_acc_std": 0.003, "width_decades": 0.2}  # fmt: skip

    return {"constant": entry(const), "warmup_cosine": entry(sched)}


def test_optimizers_counts_schedule_wins_beyond_the_noise():
    config = configs.resolve("optimizers", quick=True)
    assert config["schedules"] == ["constant", "warmup_cosine"]
    helped = {"optimizers": {"SGD": _opt(0.60, 0.65), "Adam": _opt(0.61, 0.66)},
              "val_examples": 500}  # fmt: skip
    hurt = {"optimizers": {"SGD": _opt(0.65, 0.60), "Adam": _opt(0.66, 0.661)},
            "val_examples": 500}  # fmt: skip
    text = optimizers.conclusion(config, helped)
    assert "2 (SGD, Adam) beat the constant LR by more than the noise" in text
    assert "lost to it" not in text and "one of the 500 validation examples" in text
    text = optimizers.conclusion(config, hurt)
    assert "1 (SGD) lost to it by more than the noise" in text
    assert "1 (Adam) were within the noise of it" in text and "beat the constant" not in text
    assert "Adam with" in text.split("**Best**: ")[1][:10]  # 0.661 is the best result


def _scaling(lin, sqrt):
    return {"scaling": {"slope": 0.8, "log10_error_linear": lin, "log10_error_sqrt": sqrt},
            "learning_rates": [0.01, 0.0178, 0.0316], "members": 10}  # fmt: skip


def test_batch_size_names_a_rule_only_beyond_the_grid_resolution():
    config = configs.resolve("batch_size", quick=True)
    assert "the linear rule fits better here" in batch_size.conclusion(config, _scaling(0.0, 0.3))
    text = batch_size.conclusion(config, _scaling(0.3, 0.0))
    assert "the square-root rule fits better here" in text
    text = batch_size.conclusion(config, _scaling(0.07, 0.14))
    assert "neither rule fits better by more than the noise" in text
    assert "half a step of 0.25 decades = 0.13 decades" in text


def _snapshot_summary(snap_acc, snap_nll, base_acc, base_nll, std=0.003):
    def method(label, acc, nll):
        acc_part = {"label": label, "test_acc_mean": acc, "test_acc_std": std}
        return {**acc_part, "test_nll_mean": nll, "test_nll_std": 0.01, "test_acc_seeds": [acc] * 3}

    methods = {k: method(k, base_acc, base_nll) for k in snapshots.BASELINES}
    methods["snapshot_ensemble"] = method("snapshot", snap_acc, snap_nll)
    return {"methods": methods, "test_examples": 1000}


def test_snapshot_verdict_flips_with_the_numbers():
    win = snapshots.verdict(_snapshot_summary(0.95, 0.20, 0.93, 0.30))
    lose = snapshots.verdict(_snapshot_summary(0.91, 0.40, 0.93, 0.30))
    tie = snapshots.verdict(_snapshot_summary(0.931, 0.305, 0.93, 0.30))
    assert "**The snapshot ensemble beats every baseline** on both" in win
    assert "**Snapshot ensembles lose here**" in lose and "on test accuracy to: cosine" in lose
    assert "**The snapshot ensemble ties with the best baselines**" in tie
    assert all("one of the 1000 test examples (0.1 points)" in t for t in (win, lose, tie))
    calibrated = snapshots.verdict(_snapshot_summary(0.931, 0.20, 0.93, 0.30))
    assert "beats every baseline on test NLL" in calibrated


def _curve(acc, nll):
    return {"ensemble_acc": acc, "ensemble_nll": nll, "single_acc": [[0.8, 0.85, 0.9]] * 2}


def test_snapshot_curve_sentences_follow_the_numbers():
    flat = snapshots.curve_text(_curve([[0.9, 0.9, 0.901], [0.9, 0.9, 0.9]],
                                       [[0.5, 0.4, 0.3], [0.5, 0.41, 0.31]]), 1000)  # fmt: skip
    gaining = snapshots.curve_text(_curve([[0.9, 0.92, 0.93], [0.9, 0.92, 0.93]],
                                          [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]), 1000)  # fmt: skip
    losing = snapshots.curve_text(_curve([[0.9, 0.88, 0.87], [0.9, 0.88, 0.87]],
                                         [[0.3, 0.4, 0.5], [0.3, 0.4, 0.5]]), 1000)  # fmt: skip
    assert "the gain is in calibration" in flat and "within the noise: 0.1 points" in flat
    assert "adds 3.0 points of accuracy (more than the noise" in gaining
    assert "ensembling helps here" in gaining and "calibration" not in gaining
    assert "costs 3.0 points" in losing and "ensembling hurts here" in losing
    assert "one of the 1000 test examples" in losing
    mixed = snapshots.curve_text(_curve([[0.9, 0.92, 0.93], [0.9, 0.92, 0.93]],
                                        [[0.3, 0.4, 0.5], [0.3, 0.4, 0.5]]), 1000)  # fmt: skip
    assert "a mixed result" in mixed and "helps" not in mixed
    same = snapshots.curve_text(_curve([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]],
                                       [[0.3, 0.3, 0.3], [0.3, 0.3, 0.3]]), 1000)  # fmt: skip
    assert "changes nothing measurable" in same


def _plateau_summary(plat, fixed, const):
    def method(label, acc):
        return {"label": label, "test_acc_mean": acc, "test_acc_std": 0.004, "best_lr": 0.3,
                "width_decades": 0.2, "reductions_at_best": [3, 4]}  # fmt: skip

    return {
        "reference": {"family": "cosine"},
        "methods": {
            "plateau": method("plateau", plat),
            "cosine": method("cosine", fixed),
            "constant": method("constant", const),
        },
        "test_examples": 1000,
    }


def test_plateau_verdict_flips_with_the_numbers():
    config = configs.resolve("plateau", quick=True)
    wins = plateau.verdict(config, _plateau_summary(0.70, 0.65, 0.60))
    loses = plateau.verdict(config, _plateau_summary(0.60, 0.65, 0.70))
    ties = plateau.verdict(config, _plateau_summary(0.652, 0.65, 0.651))
    assert "**Reduce-on-plateau beats cosine**" in wins and "it gains 10.0 points" in wins
    assert "**Reduce-on-plateau loses to cosine**" in loses and "it loses 10.0 points" in loses
    assert "**Reduce-on-plateau ties with cosine**" in ties
    assert "within the noise (0.4 points) of the same constant LR" in ties
    assert all("one of the 1000 test examples" in t for t in (wins, loses, ties))


def _search_summary(grid, random, tpe):
    methods = {m: {"best": {"val_acc": v, "test_acc": v}} for m, v in
               (("grid", grid), ("random", random), ("tpe", tpe))}  # fmt: skip
    return {"methods": methods, "val_examples": 500}


def test_search_verdict_flips_with_the_numbers():
    clear = search.conclusion(_search_summary(0.60, 0.62, 0.70))
    close = search.conclusion(_search_summary(0.60, 0.695, 0.70))
    assert "Bayesian (optuna TPE) found the best trial" in clear
    assert "more than the noise" in clear
    assert "no method found a clearly better trial" in close and "within the noise" in close
    # binomial standard error of 0.70 on 500 examples: 2.0 points
    assert "on 500 examples (2.0 points)" in close


def _range_summary(steepest, parallel):
    return {
        "classic": {"suggestions": {"steepest": steepest, "valley": 0.001}},
        "parallel": {"suggestion": parallel},
        "part3_reference": {
            "constant_lr": 0.1,
            "best_family_lr": 0.3,
            "grid": [0.0316, 0.1, 0.316, 1.0],
        },
    }


def test_range_test_verdict_flips_with_the_numbers():
    near = range_test.conclusion(_range_summary(0.14, 0.17))
    far = range_test.conclusion(_range_summary(1.0, 2.0))
    assert "Within the noise of part 3's best constant LR (0.1): steepest (+0.15), parallel" in near
    assert "No suggestion lands within the noise" in far and "nearest is steepest (+1.00" in far
    assert "half a step of part 3's LR grid, 0.25 decades" in near
    no_ref = copy.deepcopy(_range_summary(0.14, 0.17))
    no_ref["part3_reference"] = None
    assert range_test.conclusion(no_ref) == ""
