"""Population-based training vs the best fixed schedule at the same compute, on the CNN.

Command:
  make experiment CONFIG=pbt          # = python -m experiments.run --config pbt
  make experiment CONFIG=pbt QUICK=1  # the MLP, 4 members, 1 seed, 60 steps

Expected runtime on a 2-core CPU: about 30 s (quick: about 6 s): ONE compiled run of 48
members: per seed, a PBT population of 8 (constant LR and momentum, explored every 40 steps)
and the fixed schedule's grid of 8 peak LRs, the same compute (8 × 400 steps per seed). It used
35 s of CPU time (imports included) on a shared machine.

Expected result, in results/pbt/: pbt.png (the LR and momentum schedules PBT discovered along
the line of each seed's best member, against the fixed schedule; the lineage tree of one seed;
validation accuracy of the best member over steps), table.md, metrics.jsonl (every member's
loss, LR used, momentum, validation curve and parents), summary.json (lineage and schedules).
On MNIST-1D's CNN at T = 400, PBT LOSES to the best fixed schedule (WSD, part 3's winner): test
accuracy about 0.90 vs 0.93, on every seed, although its best member leads on validation
accuracy until the fixed schedule's final decay (PBT's greedy, short-horizon ranking, and its
selection on the same validation set). Its discovered LR schedules hold about 0.15-0.2 and
then decay in 2 of 3 seeds (cut by 20-100x in the last half: the exploit step keeps copying
members whose LR was lowered, which is how PBT rediscovers annealing), with no warmup.
`make experiment` runs this part after schedule_comparison, whose summary.json names the CNN's
best fixed family (its `reads` key); without it, warmup + cosine is used.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "pbt"
    config.title = "Population-based training vs the best fixed schedule"
    config.runner = "experiments.pbt"
    config.quick = quick
    config.reads = ["schedule_comparison"]
    config.compare_with = "schedule_comparison"
    config.fallback_family = "warmup_cosine"
    config.dataset = "mnist1d"
    config.model = "mlp" if quick else "cnn1d"
    config.model_title = "MLP 40-100-100-10" if quick else "CNN1D (paper, 5,210 params)"
    # Per seed: the PBT population starts on this grid, and the fixed schedule is searched
    # over it: population × steps is the compute of both.
    config.learning_rates = (
        [0.03, 0.1, 0.3, 1.0] if quick else [0.01, 0.0193, 0.0373, 0.0720, 0.139, 0.268, 0.518, 1.0]
    )
    config.seeds = [0] if quick else [0, 1, 2]
    config.num_steps = 60 if quick else 400
    config.batch_size = 128
    config.momentum = 0.9  # the fixed schedule's, and PBT's initial momentum
    config.pbt = config_dict(
        ready=20 if quick else 40,  # steps between exploit/explore (= evaluations)
        fraction=0.25,  # bottom quarter copies the top quarter
        resample_probability=0.25,
        factors=[0.8, 1.2],
        # PBT perturbs the hyperparameters in this order (it draws random numbers in it).
        space=dict(
            peak=dict(low=0.001, high=3.0, log=True),
            momentum=dict(low=0.5, high=0.99, log=False),
        ),
        metric="accuracy",  # validation accuracy
        seed=0,
    )
    config.dpi = 60 if quick else 100
    return config
