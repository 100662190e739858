"""What an operator asks of a running loop, answered from the stores (no Prefect needed).

Who is champion and since when, what the last round decided and why, how many
interactions the pending round has collected and how many remain before it trains, and
which dataset version the champion was trained on.
"""

from __future__ import annotations

from apo_core.config import ApoConfig
from apo_core.loop.layout import loop_tasks
from apo_core.loop.robots import recorded_count
from apo_core.registry.store import registry_for
from apo_core.workdir import next_round


def loop_status(config: ApoConfig) -> dict:
    registry = registry_for(config)
    champion, _ = registry.champion()
    decisions = registry.decisions()
    pending_move = registry.pending_move()
    pending = next_round(config)
    collected = recorded_count(config, pending, loop_tasks(config))
    per_round = config.collect.interactions_per_round
    return {
        "registry": config.registry_url,
        "champion": None if champion is None else {
            "round": champion["round"],
            "since": champion.get("set_at"),
            "set_by": champion.get("set_by"),
            "success_rate": champion.get("metrics", {}).get("success_rate"),
            "dataset": champion.get("dataset", {}),
        },
        "last_decision": None if not decisions else {
            "round": decisions[-1]["to_round"],
            "action": decisions[-1]["action"],
            "reason": decisions[-1]["reason"],
            "at": decisions[-1]["at"],
            "who": decisions[-1]["who"],
        },
        "unfinished_move": None if pending_move is None else {
            "round": pending_move["to_round"], "action": pending_move["action"], "at": pending_move["at"]},
        "pending_round": pending,
        "interactions_collected": collected,
        "interactions_per_round": per_round,
        "interactions_until_next_round": max(0, per_round - collected),
    }
