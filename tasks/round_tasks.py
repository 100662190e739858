"""The learner side of a round as Prefect tasks: dataset, update, evaluation, publish, promote.

The logic (and the resume-from-data behaviour) lives in apo_core.loop.learner; here: retries where
I/O can fail, progress, artifacts, the update on a worker from the versioned dataset, and the
fan-out of evaluation chunks (:class:`tasks.fanout.FanOut`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact

from apo_core.config import ApoConfig
from apo_core.data.versioning import DatasetVersion
from apo_core.evaluate import EvalChunk, EvalResult, evaluation_chunks
from apo_core.loop import learner, report, update
from apo_core.loop.layout import loop_tasks
from apo_core.registry.object_store import PRESIGNED_URL_SECONDS
from apo_core.registry.store import registry_for
from apo_core.workdir import report_plot, report_table, round_history, round_name, training_progress_path
from tasks import IO_RETRIES, STEP
from tasks.events import announce_round
from tasks.fanout import FanOut, WarmUp
from tasks.progress import ProgressFile, RemoteProgress, StepProgress, log, say


def round_warm_up(config: ApoConfig) -> WarmUp:
    """What a round's workers build before their first call: the worlds each robot collects
    in and those of every evaluation chunk (:func:`apo_core.loop.learner.prepare_worker`),
    on as many workers as the round runs calls at once."""
    task_names = loop_tasks(config)
    chunks = evaluation_chunks(config, tasks=task_names, suites=learner.round_suites(config))
    return WarmUp(partial(learner.prepare_worker, config, task_names),
                  workers=max(len(config.collect.robots), len(chunks)))


@task(name="label-and-version-dataset", **STEP, **IO_RETRIES)
def version_dataset(config: ApoConfig, round_number: int, task_names: list[str]) -> tuple[DatasetVersion, dict]:
    progress = StepProgress(f"round {round_number}: label and version the dataset", None, "new episodes")
    version, lineage = learner.build_dataset(config, round_number, task_names,
                                             on_episode=lambda done, total: progress.update(done, total))
    progress.close()
    log(f"round {round_number}: dataset {version.tag} md5 {version.md5}, {len(lineage['episodes'])} episodes, "
        f"{len(lineage['new_episode_ids'])} new")
    return version, lineage


@task(name="train-round", **STEP)
def train_round(config: ApoConfig, round_number: int, method: str, reference_dir: Path | None,
                version: DatasetVersion) -> Path:
    label = f"round {round_number}: train {method}"
    progress = StepProgress(label, None, "steps")
    shared = ProgressFile(training_progress_path(config, round_number))  # for a driver, when on a worker

    def on_step(step: int, total: int, metrics: dict) -> None:
        progress.update(step, total, loss=f"{metrics['loss']:.4f}")
        shared.update(step, total, loss=f"{metrics['loss']:.4f}")

    def on_notice(message: str) -> None:
        print(f"{label}: {message}", flush=True)
        shared.note(message)

    model_dir = update.train_round(config, round_number, method, reference_dir, version, on_step=on_step,
                                    on_notice=on_notice)
    progress.close()
    return model_dir


def dataset_and_update(config: ApoConfig, fan_out: FanOut, round_number: int, task_names: list[str], method: str,
                       reference_dir: Path | None) -> tuple[DatasetVersion, dict, Path]:
    """Label and version round N's dataset, then train model round N on that version.

    On Ray the update runs on a worker (``cluster.update_cpus`` CPUs and as many torch
    threads, and a GPU when ``train.device`` asks for one), its progress shown here from
    the file it keeps; in-process (``engine: local``) on ``train.threads``.
    """
    version, lineage = version_dataset(config, round_number, task_names)
    training_progress_path(config, round_number).unlink(missing_ok=True)
    update_config, resources = config, {}
    if fan_out.parallel:
        cpus, gpus = config.cluster.update_cpus, fan_out.training_gpus()  # Ray's rule: threads = CPUs held
        update_config = config.model_copy(update={"train": config.train.model_copy(update={"threads": cpus})})
        resources = {"num_cpus": cpus, **({"num_gpus": gpus} if gpus else {})}
        say(f"round {round_number}: training {method} on {'a GPU of ' if gpus else ''}the cluster")
    training = fan_out.start(train_round, dict(config=update_config, round_number=round_number, method=method,
                                               reference_dir=reference_dir, version=version), **resources)
    shown = RemoteProgress(f"round {round_number}: train {method}", training_progress_path(config, round_number),
                           "steps") if fan_out.parallel else None
    model_dir = training.result(on_tick=shown.poll if shown else None)
    if shown is not None:
        shown.close()
    return version, lineage, model_dir


@task(name="evaluate-chunk", **STEP, retries=1)
def evaluate_chunk(config: ApoConfig, model_dir: Path, chunk: EvalChunk) -> EvalResult:
    """Some seeds of one task × suite; on a worker, with its own envs and policy copy."""
    return learner.evaluate_model_on_chunk(config, model_dir, chunk)


def evaluate_round(config: ApoConfig, fan_out: FanOut, round_number: int, model_dir: Path, task_names: list[str]) -> dict:
    """The round's evaluation, its chunks fanned out (cached as evaluation.json).

    Every chunk is the same task on the same seeds wherever it runs, so a serial and a
    parallel evaluation of one model give the same outcomes seed by seed.
    """
    saved = learner.saved_evaluation(config, round_number)
    if saved is not None:
        return saved
    chunks = evaluation_chunks(config, tasks=task_names, suites=learner.round_suites(config))
    progress = StepProgress(f"round {round_number}: evaluate", sum(len(c.seeds) for c in chunks), "episodes")
    counts = {"done": 0, "successes": 0}

    def on_result(_index: int, result: EvalResult) -> None:
        counts["done"] += result.episodes
        counts["successes"] += result.successes
        progress.update(counts["done"], success=f"{counts['successes'] / counts['done']:.0%}")

    results = fan_out.map(evaluate_chunk, [dict(config=config, model_dir=model_dir, chunk=c) for c in chunks],
                        on_result=on_result)
    progress.close()
    return learner.save_evaluation(config, round_number, results)


@task(name="publish-round", **STEP, **IO_RETRIES)
def publish_round(config: ApoConfig, round_number: int, model_dir: Path, parent_round: int | None, method: str,
                  version: DatasetVersion, metrics: dict) -> None:
    learner.publish_round(config, round_number, model_dir, parent_round=parent_round, method=method,
                          version=version, metrics=metrics)
    announce_round("apo.round.published", round_number, parent_round, f"{method} from round {parent_round}",
                   success_rate=metrics["success_rate"], dataset=version.tag)


@task(name="promote-if-better", **STEP, **IO_RETRIES)
def promote_if_better(config: ApoConfig, round_number: int) -> learner.PromotionOutcome:
    outcome = learner.promote_if_better(config, round_number)
    event = "apo.round.promoted" if outcome.promoted else "apo.round.rejected"
    announce_round(event, round_number, outcome.champion_round, outcome.reason, gain=outcome.gain)
    log(f"round {round_number}: {'promoted' if outcome.promoted else 'not promoted'} ({outcome.reason})")
    return outcome


@task(name="report", **STEP, **IO_RETRIES)
def publish_report(config: ApoConfig, summary: dict, lineage: dict, method: str, parent: int | None) -> Path:
    """The round's report on disk (rounds.png, rounds.md) and in the UI: the table of every
    round, the round's lineage, the plotted values, and the plot itself where the model
    store can give the UI a URL to it (S3: stored beside the rounds, presigned)."""
    history = round_history(config)
    plot = report.plot(history, report_plot(config))
    report_table(config).write_text(report.markdown(history))
    create_table_artifact(key="apo-rounds", table=report.table_rows(history),
                          description="Per-round success, intervention rate, promotion and dataset version")
    name = round_name(summary["round"])
    create_markdown_artifact(key=f"apo-{name}-lineage", description=f"{name}: lineage and the gate's decision",
                             markdown=report.lineage_markdown(summary, lineage, method=method, parent=parent,
                                                              code_commit=report.code_commit()))
    create_table_artifact(key="apo-rounds-plot", table=report.plotted_values(history),
                          description="What rounds.png plots: success per suite and intervention rate per round")
    url = registry_for(config).publish_report(summary["round"], plot.name, plot.read_bytes())
    if url is not None:
        create_image_artifact(image_url=url, key="apo-rounds-plot-image",
                              description=f"rounds.png after {name} (the link is presigned for "
                                          f"{PRESIGNED_URL_SECONDS // 86400} days)")
    return plot
