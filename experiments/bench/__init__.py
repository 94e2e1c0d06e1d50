"""Benchmark: K members of a user's own step through lrjax vs the user's loop, PyTorch and a bound.

Command: ``make bench`` (``python -m experiments.bench [--quick] [--workloads cnn,bilstm,...]``);
``make bench-gpu`` (``--gpu``) on a GPU. Runtime: about 17 minutes on 2 quiet CPU cores
(``--scale 0.5`` halves the steps; ``--quick``, the smoke test of ``tests/bench_test.py``: about
a minute); the GPU table is sized for 8 minutes on one H100 (not yet measured). On a busy
machine PyTorch's threads wait on each other: run it on a quiet machine. Writes
``results/bench/bench.{md,json}`` (``--out``).

Workloads (:mod:`experiments.bench.workloads`), each trained with SGD (momentum 0.9) and linear
warmup + cosine decay, K members with peak learning rates log-spaced, all from one
initialization (seed 0) on the same batches, by the user's own step for one model
(:func:`experiments.bench.workloads.task`): ``mlp`` (lrjax.models.MLP on MNIST-1D), ``resnet``
(lrjax.models.ResNet, BatchNorm and dropout), ``transformer``, and three models written as users
write them: ``cnn`` (the Flax MNIST example's nn.Conv CNN), ``resblocks`` (ResNet-18-style basic
blocks of nn.Conv with BatchNorm) and ``bilstm`` (the Flax SST-2 example's
``nn.RNN(nn.OptimizedLSTMCell)`` classifier with dropout).

Rows (:mod:`experiments.bench.rows`, :mod:`experiments.bench.torch_ports`), per workload and K:

* ``lrjax``: ``lrjax.vectorize(*lrjax.freeze_on_divergence(step, init))`` + ``lrjax.fit``
  (groups of 4 members per device on CPU, as ``lrjax.sweep`` makes them); ``how`` names the
  execution ``"auto"`` chose and the devices the group ran on. ``lrjax one group``: all K at once.
* ``sequential JAX``: the user's loop: for each member, a Python loop over the jitted step.
* ``PyTorch loop`` / ``PyTorch vmap``: hand-written PyTorch ports (the same layers and FLOPs),
  one member after another, and ``torch.func.vmap`` over stacked members.
* ``one model, batch K*B``: the bound: one model trained on batches K times as large, for the
  same steps, on one device and data-parallel over all devices; the faster counts.

Columns: model-steps/s (members x steps / wall seconds, compile excluded); the ratios to
sequential JAX and the PyTorch loop; vectorization efficiency = the row's speed / the bound's
(<= 1 unless the bound is broken, which the report flags); MFU (3 x XLA's forward FLOPs / a
float32 matmul's FLOP/s measured in the same run); compile seconds. Also: compile seconds of the
single step next to the vectorized program's, the divergence guard's share of a step, and the
loss agreement of PyTorch, sequential JAX and lrjax on the MLP.

"Before" figures of these rows: run the same benchmark with another lrjax, ``--lrjax-from
PATH`` (a checkout of an older commit: the rows use only ``vectorize``, ``fit`` and
``freeze_on_divergence``), or with ``--execution scan`` (the one-program chunk of every
earlier lrjax).

On CPU the benchmark exposes each core as an XLA device
(``--xla_force_host_platform_device_count``), so ``lrjax`` may shard members over all cores; the
other rows run as a user would write them, on the default device.
"""
