"""The index advisor: workload → rewrite → candidates → what-if → selection → apply → verify.

Each stage is its own module so it can be tested on its own; :func:`asymm.advisor.advise.advise`
runs the whole pipeline and returns the JSON-ready result the CLI prints.
"""
