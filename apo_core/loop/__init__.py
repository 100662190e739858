"""One round of the lifelong loop, each step idempotent and resumable from the data.

    layout.py   where the loop keeps things under paths.workdir, and what is pending
    robots.py   the robot side: deploy a round, collect with a human watching
    learner.py  the learner side: dataset, update, evaluation, publish, promote, rollback
    status.py   `apo status`: the champion, the last decision, what the next round waits for
    report.py   the per-round table and plot
"""
