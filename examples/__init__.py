"""Runnable Flax integration examples; each module's ``main(quick=...)`` is tested."""
