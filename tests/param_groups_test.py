"""Per-group learning rates (lrjax.param_groups): the formula against NumPy under jit and vmap,
a sweep over the LLRD factor against plain optax runs with one optimizer per parameter group
(a model with BatchNorm and dropout), frozen groups, and bad input."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx

import lrjax
from lrjax import sweep

N, D_IN, D_HID, D_OUT, BATCH, STEPS = 48, 5, 6, 3, 16, 6
RTOL, ATOL = 1e-5, 1e-6  # float32, a few steps: the vmapped program reorders reductions
LOSS = optax.softmax_cross_entropy_with_integer_labels
QUIET = sweep.Options(progress=False)


class BNDropoutNet(linen.Module):
    """Four depths: Dense_0 (0), BatchNorm_0 (1), Dense_1 (2), head (3); dropout in between."""

    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(
            linen.Dense(D_HID, use_bias=False)(x)  # a bias before BN has no gradient
        )
        x = linen.Dropout(0.5, deterministic=not train)(jnp.tanh(x))
        x = jnp.tanh(linen.Dense(D_HID)(x))
        return linen.Dense(D_OUT, name="head")(x)


def make_data(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D_IN)).astype(np.float32)
    return x, (np.abs(x[:, 0] * 2).astype(np.int32) % D_OUT).astype(np.int32)


DATA = make_data(0, N)
SAMPLE = DATA[0][:BATCH]
PARAMS = BNDropoutNet().init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, SAMPLE)[
    "params"
]
GROUPS = {"head": "^head/"}
DEPTH_OF = {"Dense_0": 0, "BatchNorm_0": 1, "Dense_1": 2, "head": 3}


def numpy_scales(decay, mults):
    """The documented formula, leaf by leaf in float64: m_group * decay ** (d_max - d)."""
    out = {}
    for module, leaves in PARAMS.items():
        group = "head" if module == "head" else "rest"
        factor = mults.get(group, 1.0) * np.float64(decay) ** (3 - DEPTH_OF[module])
        out[module] = {name: factor for name in leaves}
    return out


# ---------------------------------------------------------------------------------------------
# Depths, groups and the formula


def test_depths_follow_linen_call_order_and_regex_order():
    assert lrjax.layer_depths(PARAMS) == {
        m: {name: d for name in PARAMS[m]} for m, d in DEPTH_OF.items()
    }
    depths = lrjax.layer_depths(PARAMS, order=["Dense_0|BatchNorm", "Dense_1", "."])
    assert depths["BatchNorm_0"]["scale"] == 0 and depths["head"]["kernel"] == 2
    # jax.eval_shape (any jax.tree function) sorts the keys: BatchNorm_0 comes first there,
    # so a sorted tree takes an explicit order, which gives the call-order depths back
    abstract = jax.eval_shape(lambda: PARAMS)
    assert list(abstract) == ["BatchNorm_0", "Dense_0", "Dense_1", "head"]
    order = ["^Dense_0/", "^BatchNorm_0/", "^Dense_1/", "^head/"]
    assert lrjax.layer_depths(abstract, order=order) == lrjax.layer_depths(PARAMS)
    labels = lrjax.group_labels(PARAMS, GROUPS)
    assert labels["head"] == {"bias": "head", "kernel": "head"}
    assert labels["Dense_1"]["kernel"] == "rest"


def test_nnx_trees_take_an_explicit_order():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.inp = nnx.Linear(2, 3, rngs=rngs)
            self.norm = nnx.BatchNorm(3, rngs=rngs)
            self.out = nnx.Linear(3, 2, rngs=rngs)

    params = nnx.to_pure_dict(nnx.state(Net(nnx.Rngs(0)), nnx.Param))
    depths = lrjax.layer_depths(params, order=["^inp/", "^norm/", "^out/"])
    assert (depths["inp"]["kernel"], depths["norm"]["scale"], depths["out"]["bias"]) == (0, 1, 2)


def test_leaf_scales_equal_numpy_under_jit_and_vmap_over_decay_and_multiplier():
    depths = lrjax.layer_depths(PARAMS)
    labels = lrjax.group_labels(PARAMS, GROUPS)
    decays = np.array([0.3, 0.65, 0.8, 1.0, 1.25], np.float32)
    heads = np.array([1.0, 2.0, 0.5, 0.0, 3.0], np.float32)

    @jax.jit
    @jax.vmap
    def scales(decay, head):
        return lrjax.leaf_scales(depths, decay, labels=labels, lr_mults={"head": head})

    got = scales(decays, heads)
    for k in range(len(decays)):
        want = numpy_scales(float(decays[k]), {"head": float(heads[k])})
        for a, b in zip(
            jax.tree.leaves(jax.tree.map(lambda v, k=k: v[k], got)),
            jax.tree.leaves(want),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_the_update_is_the_plain_update_times_the_leaf_scale_under_vmap():
    factory = lrjax.discriminative(optax.adam, PARAMS, groups=GROUPS)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), PARAMS)
    decays = jnp.array([0.5, 0.9], jnp.float32)

    @jax.jit
    @jax.vmap
    def first_update(decay):
        tx = optax.inject_hyperparams(factory, hyperparam_dtype=jnp.float32)(
            learning_rate=0.1, layer_decay=decay, rest_lr_mult=0.5
        )
        with jax.numpy_dtype_promotion("standard"):  # optax's adam: b1 ** int32 count
            updates, state = tx.update(grads, tx.init(PARAMS), PARAMS)
        return updates, state.hyperparams["layer_decay"]

    updates, logged = first_update(decays)
    np.testing.assert_array_equal(logged, decays)  # the decay lives in the optimizer state
    for k, decay in enumerate([0.5, 0.9]):
        want = numpy_scales(decay, {"rest": 0.5})
        for module, leaves in PARAMS.items():
            for name in leaves:
                # Adam's first update is -lr * sign(g) (up to eps) for every leaf
                np.testing.assert_allclose(
                    updates[module][name][k], -0.1 * want[module][name], rtol=1e-5
                )


# ---------------------------------------------------------------------------------------------
# A sweep over the LLRD factor, on a model with BatchNorm and dropout, against plain optax with
# one optimizer per depth (PyTorch's param groups).

LRS = (0.3, 0.3, 0.2)
DECAYS = (1.0, 0.5, 0.8)
REST_MULTS = (1.0, 0.3, 0.0)  # the last member freezes everything but the head


@functools.cache
def llrd_sweep():
    return sweep.train(
        BNDropoutNet(), LOSS, DATA,
        optimizer=lrjax.discriminative(optax.sgd, PARAMS, groups=GROUPS),
        hparams={"learning_rate": np.array(LRS, np.float32),
                 "layer_decay": np.array(DECAYS, np.float32),
                 "rest_lr_mult": np.array(REST_MULTS, np.float32)},
        optimizer_kwargs=lambda hp: {**hp, "momentum": 0.9},
        seeds=[0, 1, 2], num_steps=STEPS, batch_size=BATCH, options=QUIET,
    )  # fmt: skip


def reference_tx(group_lrs):
    """optax.multi_transform over the depths: PyTorch's parameter groups."""
    labels = {m: {n: str(DEPTH_OF[m]) for n in leaves} for m, leaves in PARAMS.items()}
    return optax.multi_transform(
        {str(d): optax.sgd(group_lrs[d], momentum=0.9) for d in range(4)}, labels
    )


@jax.jit
def reference_step(params, stats, opt_state, x, y, key, group_lrs):
    """Plain optax: one SGD with momentum per depth, each with its own LR."""
    tx = reference_tx(group_lrs)

    def loss_fn(p):
        out, upd = BNDropoutNet().apply({"params": p, "batch_stats": stats}, x, train=True,
                                        rngs={"dropout": key}, mutable=["batch_stats"])  # fmt: skip
        return jnp.mean(LOSS(out, y)), upd["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss


def reference_run(seed, lr, decay, rest):
    variables = BNDropoutNet().init(
        {"params": jax.random.key(seed), "dropout": jax.random.fold_in(jax.random.key(seed), 1)},
        SAMPLE,
    )
    params, stats = variables["params"], variables["batch_stats"]
    group_lrs = jnp.array(
        [lr * (1.0 if d == 3 else rest) * decay ** (3 - d) for d in range(4)], jnp.float32
    )
    opt_state = reference_tx(group_lrs).init(params)
    init, losses = params, []
    rows = lrjax.feeds.batch_indices_np(0, 0, STEPS, N, BATCH)
    for t in range(STEPS):
        key = jax.random.fold_in(lrjax.step_key(seed, t), 0)
        x, y = DATA[0][rows[t]], DATA[1][rows[t]]
        params, stats, opt_state, loss = reference_step(
            params, stats, opt_state, x, y, key, group_lrs
        )
        losses.append(float(loss))
    return np.array(losses), init, params, stats


def test_llrd_sweep_with_batchnorm_and_dropout_equals_plain_optax_param_groups():
    result = llrd_sweep()
    assert not result.diverged.any()
    np.testing.assert_array_equal(result.opt_hparams["layer_decay"][:, -1], np.float32(DECAYS))
    for k in range(3):
        losses, _, params, stats = reference_run(k, LRS[k], DECAYS[k], REST_MULTS[k])
        np.testing.assert_allclose(result.loss[k], losses, rtol=RTOL, atol=ATOL)
        got = jax.tree.map(lambda a, k=k: a[k], (result.params, result.model_state))
        want = (params, {"batch_stats": stats})
        chex.assert_trees_all_close(got, want, rtol=RTOL, atol=ATOL)


def test_other_decays_and_a_factory_built_afresh_compile_nothing():
    llrd_sweep()
    again = sweep.train(
        BNDropoutNet(), LOSS, DATA,
        optimizer=lrjax.discriminative(optax.sgd, PARAMS, groups=GROUPS),
        hparams={"learning_rate": np.array(LRS, np.float32),
                 "layer_decay": np.array([0.9, 0.3, 0.6], np.float32),
                 "rest_lr_mult": np.array(REST_MULTS, np.float32)},
        optimizer_kwargs=lambda hp: {**hp, "momentum": 0.9},
        seeds=[0, 1, 2], num_steps=STEPS, batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    assert again.metadata["num_compiles"] == 0
    assert not np.allclose(again.loss[:, -1], llrd_sweep().loss[:, -1])


def test_a_zero_multiplier_freezes_its_group_but_not_the_batch_statistics():
    result = llrd_sweep()
    k = 2  # rest_lr_mult = 0
    init = sweep.Model.from_linen(BNDropoutNet(), SAMPLE).init(jax.random.key(k))
    final = jax.tree.map(lambda a: a[k], result.params)
    for module in ("Dense_0", "BatchNorm_0", "Dense_1"):
        for name in PARAMS[module]:
            np.testing.assert_array_equal(final[module][name], init[module][name])
    assert not np.allclose(final["head"]["kernel"], init["head"]["kernel"])
    # batch statistics are model state, updated by every training-mode forward pass
    mean = result.model_state["batch_stats"]["BatchNorm_0"]["mean"][k]
    assert np.abs(mean).min() > 0


def test_a_statically_frozen_group_has_no_optimizer_state_and_never_moves():
    factory = lrjax.discriminative(optax.adam, PARAMS, groups=GROUPS, frozen=["rest"])
    tx = factory(learning_rate=0.1, layer_decay=0.5)
    state = tx.init(PARAMS)
    mu = state[0].inner_states["frozen"].inner_state
    assert jax.tree.leaves(mu) == []  # set_to_zero keeps nothing
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    with jax.numpy_dtype_promotion("standard"):  # optax's adam: b1 ** int32 count
        updates, _ = tx.update(grads, state, PARAMS)
    for module in ("Dense_0", "BatchNorm_0", "Dense_1"):
        assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(updates[module]))
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1, rtol=1e-5)


class NnxBNDropout(nnx.Module):
    def __init__(self, rngs):
        self.inp = nnx.Linear(D_IN, D_HID, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(D_HID, momentum=0.8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jnp.tanh(self.norm(self.inp(x)))))


def test_a_statically_frozen_backbone_in_an_nnx_sweep_with_batchnorm_and_dropout():
    model = sweep.Model.from_nnx(NnxBNDropout)
    params = model.init(jax.random.key(0))
    factory = lrjax.discriminative(
        optax.adam, params, groups={"head": "^out/"}, default_group="backbone",
        order=["^inp/", "^norm/", "^out/"], frozen=["backbone"],
    )  # fmt: skip
    result = sweep.train(
        model, LOSS, DATA, optimizer=factory,
        hparams={"learning_rate": np.array([0.05, 0.1], np.float32),
                 "layer_decay": np.array([0.5, 1.0], np.float32)},
        seeds=[0, 1], num_steps=STEPS, batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    assert not result.diverged.any()
    for k in range(2):
        init = model.init(jax.random.key(k))
        final = jax.tree.map(lambda a, k=k: a[k], result.params)
        for module in ("inp", "norm"):
            chex.assert_trees_all_equal(final[module], init[module])
        assert not np.allclose(final["out"]["kernel"], init["out"]["kernel"])
    # the running statistics are model state: a frozen backbone's BatchNorm still updates them
    assert np.abs(result.model_state["batch_stats"]["norm"]["mean"]).min() > 0


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("decay", [0.0, -0.5])
def test_layer_decay_must_be_positive(decay):
    factory = lrjax.discriminative(optax.sgd, PARAMS, groups=GROUPS)
    with pytest.raises(ValueError, match="layer_decay must be a finite number > 0"):
        factory(learning_rate=0.1, layer_decay=decay)
    with pytest.raises(ValueError, match="member 1's layer_decay must be a finite number > 0"):
        sweep.train(
            BNDropoutNet(), LOSS, DATA, optimizer=factory,
            hparams={"learning_rate": np.array([0.1, 0.1], np.float32),
                     "layer_decay": np.array([0.5, decay], np.float32)},
            num_steps=2, batch_size=BATCH, options=QUIET,
        )  # fmt: skip


def test_bad_groups_are_value_errors_naming_the_argument():
    factory = lrjax.discriminative(optax.sgd, PARAMS, groups=GROUPS)
    with pytest.raises(ValueError, match="backbone_lr_mult names an unknown group"):
        factory(learning_rate=0.1, backbone_lr_mult=0.1)
    with pytest.raises(ValueError, match="layer_decay must be a finite number > 0, got nan"):
        factory(learning_rate=0.1, layer_decay=float("nan"))
    with pytest.raises(ValueError, match="head_lr_mult must be a finite number >= 0"):
        factory(learning_rate=0.1, head_lr_mult=-1.0)
    with pytest.raises(ValueError, match="frozen names the group 'backbone'"):
        lrjax.discriminative(optax.sgd, PARAMS, groups=GROUPS, frozen=["backbone"])
    with pytest.raises(ValueError, match=r"groups\['head'\] = '\^Head/' matches no parameter"):
        lrjax.discriminative(optax.sgd, PARAMS, groups={"head": "^Head/"})
    with pytest.raises(ValueError, match="order must match every parameter; 'head/bias'"):
        lrjax.layer_depths(PARAMS, order=["Dense", "BatchNorm"])
    with pytest.raises(ValueError, match="lr_mults names the group 'body'"):
        lrjax.leaf_scales(lrjax.layer_depths(PARAMS), 0.5, lr_mults={"body": 1.0})
    with pytest.raises(ValueError, match="group names must be Python identifiers"):
        lrjax.group_labels(PARAMS, {"the head": "head"})
    with pytest.raises(ValueError, match="optimizer does not accept optimizer_kwargs"):
        sweep.train(
            BNDropoutNet(), LOSS, DATA, optimizer=factory,
            hparams={"learning_rate": np.array([0.1], np.float32),
                     "body_lr_mult": np.array([0.1], np.float32)},
            num_steps=2, batch_size=BATCH, options=QUIET,
        )  # fmt: skip
