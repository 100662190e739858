"""The bounded update's choice of episodes (apo_core/data/replay.py): a fixed replay of
earlier rounds beside the round's own and the demonstrations, task-balanced, takeovers first,
the same for the same seed."""

from apo_core.data.replay import episode_task, update_episodes

TASKS = ("button-press-topdown", "drawer-open")


def history(rounds: int, per_task: int = 20) -> list[dict]:
    """Lineage episodes of ``rounds`` rounds, two robots' worth per task; every third one taken over."""
    episodes = [{"episode_id": f"sim-robot-0.expert.{task}.e{i:06d}", "round": 0, "source": "expert",
                 "labels": {"expert_demo": 50}} for task in TASKS for i in range(5)]
    for number in range(1, rounds + 1):
        for task in TASKS:
            for i in range(per_task):
                labels = {"autonomous": 40, "human": 10, "failure_prone": 5} if i % 3 == 0 else {"autonomous": 60}
                episodes.append({"episode_id": f"sim-robot-{i % 2}.round-{number:04d}.{task}.e{i:06d}",
                                 "round": number, "source": "interaction", "labels": labels})
    return episodes


def test_the_replay_is_the_same_size_at_round_50_as_at_round_5():
    sizes = []
    for rounds in (5, 10, 30, 50):
        chosen = update_episodes(history(rounds), rounds, replay=80, seed=0)
        assert len(chosen["demonstrations"]) == 10 and len(chosen["current"]) == 40
        assert all(f".round-{rounds:04d}." in e for e in chosen["current"])
        sizes.append(len(chosen["replayed"]))
    assert sizes == [80, 80, 80, 80]


def test_the_replay_takes_the_tasks_in_turn_and_takeovers_first():
    chosen = update_episodes(history(30), 30, replay=80, seed=0)["replayed"]
    assert sum(episode_task(e) == "drawer-open" for e in chosen) == 40  # balanced
    taken_over = {e["episode_id"] for e in history(30) if "human" in e["labels"]}
    assert set(chosen) <= taken_over  # 29 rounds hold far more than 80 episodes with a takeover
    assert not any(".round-0030." in e for e in chosen)  # the round's own are not replayed


def test_the_choice_is_deterministic_given_the_seed_and_differs_across_seeds():
    episodes = history(20)
    assert update_episodes(episodes, 20, 30, seed=3) == update_episodes(list(reversed(episodes)), 20, 30, seed=3)
    assert update_episodes(episodes, 20, 30, seed=3) != update_episodes(episodes, 20, 30, seed=4)


def test_a_short_history_is_replayed_whole_and_no_limit_replays_everything():
    assert len(update_episodes(history(2), 2, replay=80, seed=0)["replayed"]) == 40
    assert len(update_episodes(history(10), 10, replay=None, seed=0)["replayed"]) == 360
