"""The events the loop emits, for automations and the UI's event feed.

    episode.collected          per episode, the robot as the resource (the learner's trigger counts them)
    apo.round.published        a round is in the model store
    apo.round.promoted         the gate promoted it: the champion moved (e.g. redeploy the robots)
    apo.round.rejected         the gate kept the champion
    apo.champion.rolled-back   an operator re-pointed the champion to an earlier round

A round's events have the round as their resource (``apo.round.round-0003``) and the
champion among their related resources; the payload holds the round, the champion and the
reason. Robots are named resources (``prefect.resource.name``).
"""

from __future__ import annotations

import logging

from prefect.events import emit_event

from apo_core.workdir import round_name

EPISODE_EVENT = "episode.collected"


def robot_resource(robot: str) -> str:
    """The Prefect resource id of a robot: what the learner's trigger counts events of."""
    return f"apo.robot.{robot}"


def announce(episode) -> None:
    """One ``episode.collected`` event, its resource the robot that recorded the episode."""
    meta = episode.meta
    emit_event(
        event=EPISODE_EVENT,
        resource={"prefect.resource.id": robot_resource(meta.robot_id), "prefect.resource.name": meta.robot_id,
                  "apo.task": meta.task},
        payload={"episode_id": meta.episode_id, "policy_round": meta.policy_round, "takeovers": meta.n_takeovers,
                 "success": meta.success},
    )


def flush_events() -> None:
    """Send the events still queued in this process before the task returns: on a Ray worker
    that is shut down right after, queued events would never reach the trigger."""
    from prefect.events.worker import EventsWorker

    # Draining what is queued is the point here: the worker's "Still processing items"
    # warning while it does so would only be noise on the terminal.
    service_log = logging.getLogger(EventsWorker.__name__)
    level = service_log.level
    service_log.setLevel(logging.ERROR)
    try:
        EventsWorker.drain_all(timeout=30, at_exit=False)
    finally:
        service_log.setLevel(level)




def round_resource(number: int) -> dict:
    return {"prefect.resource.id": f"apo.round.{round_name(number)}", "prefect.resource.name": round_name(number)}


def announce_round(event: str, number: int, champion: int | None, reason: str, **payload) -> None:
    """One round-level event (``apo.round.published`` / ``promoted`` / ``rejected``)."""
    related = [{**round_resource(champion), "prefect.resource.role": "champion"}] if champion is not None else []
    emit_event(event=event, resource=round_resource(number), related=related,
               payload={"round": number, "champion": champion, "reason": reason, **payload})


def announce_rollback(number: int, reason: str, who: str) -> None:
    emit_event(event="apo.champion.rolled-back", resource=round_resource(number),
               payload={"round": number, "champion": number, "reason": reason, "who": who})
