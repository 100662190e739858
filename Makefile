# The two commands of the README. Each sets up what it needs first (infra/setup_env.sh:
# Debian packages, Python 3.12, .venv from uv.lock) — idempotent and fast when done.
export MUJOCO_GL ?= egl

.PHONY: setup demo test bench

setup:
	@bash infra/setup_env.sh

demo: setup
	.venv/bin/apo demo

# Two test files at a time (pytest-xdist, one file per worker keeps module fixtures whole):
# most tests wait on subprocesses, servers and Ray workers, so the two cores stay busy.
test: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadfile

bench: setup
	.venv/bin/python benchmarks/env_speed.py
