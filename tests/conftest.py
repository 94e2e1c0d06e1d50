"""Test-wide JAX settings: strict shapes and dtypes, so silent promotions fail loudly."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
