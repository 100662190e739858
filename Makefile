# The README's commands. Each sets up what it needs first (infra/setup_env.sh: Debian
# packages, Python 3.12, .venv from uv.lock) — idempotent and fast when done.
export MUJOCO_GL ?= egl

.PHONY: setup demo test check config-docs bench

setup:
	@bash infra/setup_env.sh

demo: setup
	.venv/bin/apo demo

# Two test files at a time (pytest-xdist, one file per worker keeps module fixtures whole):
# most tests wait on subprocesses, servers and Ray workers, so the two cores stay busy.
test: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadfile

# The fast tier: every test not marked slow (the end-to-end flows, Ray, servers, the fault suite).
check: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not slow"

# configs/default.yaml and docs/configuration.md, generated from the config models.
config-docs: setup
	.venv/bin/apo config defaults > configs/default.yaml
	.venv/bin/apo config docs > docs/configuration.md

bench: setup
	.venv/bin/python benchmarks/env_speed.py
