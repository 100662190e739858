"""The library of the lifelong-learning loop; it never imports Prefect or Ray (tests/test_structure.py
checks that, and that each package imports only its own level or lower ones, in this order):

    errors.py, workdir.py   one-line user errors; every path, file name and round name under paths.workdir
    config/                 the typed config: one section per concern, the one source of defaults
    labels.py, statistics.py, sampler.py, objectives.py, action_tokenizer.py, fast_tokenizer.py, stored.py
                            the APO math as pure functions (docs/apo.md), and records read by their schema
    envs/                   the MetaWorld world, its perturbations and per-process pools
    actors.py               what acts (the Actor protocol) and random actions
    human/                  who watches the robot: the scripted expert, the simulated human, a teleoperator
    recording/              episodes: schema, crash-safe store, the collector, one writer per robot
    data/                   labelled steps, the LeRobot v3 dataset, git + DVC versions, lineage, ingest
    policy/                 the VLAs behind one interface, each kind's configuration and model
    evaluate.py             seeded lockstep evaluation
    training/               behaviour cloning and the update methods on one optimisation loop
    registry/               the model store (S3 or a directory) and the promote gate
    loop/                   one round: the robot side, the update, the learner side, status, reports
"""

