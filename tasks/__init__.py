"""Prefect tasks: thin wrappers over apo_core that add retries, events, progress, artifacts
and the submission of fan-out work to the task runner (tasks/fanout.py)."""

from prefect.cache_policies import NO_CACHE

# No Prefect result caching on purpose: each step finds its own finished work in the data
# (episodes, dataset tags, model files, the registry), which survives a lost Prefect database.
STEP = dict(cache_policy=NO_CACHE, persist_result=False)
IO_RETRIES = dict(retries=2, retry_delay_seconds=3)
