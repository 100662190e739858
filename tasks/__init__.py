"""Prefect tasks: thin wrappers over apo_core that add retries, events, progress, artifacts
and the submission of fan-out work to the task runner.

    robot_tasks.py  the robot side: demonstrations, deploy, each robot's collection
    round_tasks.py  the learner side: dataset, update, evaluation chunks, publish, promote, report
    fanout.py       where parallel calls run: Ray through RayTaskRunner, or this process
    events.py       the events a round emits (an automation can act on them)
    progress.py     progress lines for the terminal and the Prefect logs
"""

from prefect.cache_policies import NO_CACHE

# No Prefect result caching on purpose: each step finds its own finished work in the data
# (episodes, dataset tags, model files, the registry), which survives a lost Prefect database.
STEP = dict(cache_policy=NO_CACHE, persist_result=False)
IO_RETRIES = dict(retries=2, retry_delay_seconds=3)
