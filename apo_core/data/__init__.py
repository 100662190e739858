"""Data: recorded episodes as labelled training steps, and the versioned LeRobot dataset.

    steps.py           episodes flattened to labelled steps (the training input)
    dataset.py         the LeRobot v3 dataset: a round's episodes appended as shards
    training_steps.py  a dataset version read back as training steps
    replay.py          which episodes of it an update reads: the round's, the demos, a fixed replay
    versioning.py      the git + DVC workspace: a round is a tag, pushed to the remote
    round_dataset.py   one round's data step: label, append, version, record lineage
    restore.py         a round's dataset checked out, verified file by file, swapped in
    lineage.py         which episodes, labelled how, made a round's dataset
    ingest.py          a recording made with LeRobot's own tools taken in as a round
    ingest_checks.py   the door of ingest: a recording's rows checked before anything is written
"""
