"""Episodes: what the robot and the human did, recorded so that nothing is lost.

    episodes.py   one episode: its columns (LeRobot's names) and metadata, written and read checked
    store.py      a directory of episodes: crash-safe appends by several writers, resumable
    collector.py  deploy an actor with a human watching and record each episode (docs/apo.md §1)
    locks.py      one writer per robot: an advisory lock held while it records
"""
