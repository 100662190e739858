"""One round of the lifelong loop, each step idempotent and resumable from the data.

    robots.py      the robot side: deploy a round, collect with a human watching (also by hand)
    update.py      the update: BC or a preference method, saved with one training record
    learner.py     the learner side: dataset, evaluation, publish, promote, rollback
    layout.py      which tasks the loop runs on
    provenance.py  which data made a round, and how
    reproduce.py   retrain a round from its stored dataset version and compare
    status.py      `apo status`: the champion, the last decision, what the next round waits for
    report.py      the per-round table and plot
"""
