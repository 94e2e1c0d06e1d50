"""The lrjax study: `python -m experiments.run` (alias `make experiment`) runs each config."""
