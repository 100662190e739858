"""`apo`, the command line: parsing and printing only, the work done by apo_core.

    main.py       the parser, the config every command reads, one line and exit 2 on a user's error
    collect.py    collect, train, evaluate
    datasets.py   dataset build / checkout, ingest, lineage
    registry.py   publish, rounds, rollback, audit, reproduce, status
    loop.py       demo, run
    config.py     config show / defaults / docs
"""

from flows.cli.main import EXIT_USER_ERROR, main

__all__ = ["EXIT_USER_ERROR", "main"]
