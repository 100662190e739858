"""The per-round report: a PNG plot, a table of the loop's history, and a round's lineage
(the Prefect artifacts are made from these)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

NONE = "–"  # an empty cell (a bare "-" would render as a list bullet in a markdown cell)


def gain_text(gain: dict | None) -> str:
    """A paired difference as "+12% [+4%, +20%]"."""
    if not gain:
        return NONE
    return f"{gain['difference']:+.0%} [{gain['ci95_low']:+.0%}, {gain['ci95_high']:+.0%}]"


def success_text(rate: float, low: float, high: float) -> str:
    return f"{rate:.0%} [{low:.0%}, {high:.0%}]"


def table_rows(history: list[dict]) -> list[dict]:
    """One printable row per round (also the Prefect table artifact)."""
    rows = []
    for h in history:
        takeovers = h["takeovers_per_episode"]
        rows.append({
            "round": h["round"],
            "success": success_text(h["success_rate"], h["ci95_low"], h["ci95_high"]),
            "gain vs champion": gain_text(h.get("gain_vs_champion")),
            "gain vs round 0": gain_text(h.get("gain_vs_round0")),
            "takeovers/ep": NONE if takeovers is None else f"{takeovers:.2f}",
            "human share": NONE if h["human_step_share"] is None else f"{h['human_step_share']:.0%}",
            "promoted": "yes" if h["promoted"] else "no",
            "champion": h["champion_round"],
            "dataset md5": h["dataset_md5"][:12],
            "labels": ", ".join(f"{k} {v}" for k, v in h["label_counts"].items() if v),
        })
    return rows


def markdown(history: list[dict]) -> str:
    rows = table_rows(history)
    if not rows:
        return "_no rounds yet_"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[k]) for k in header) + " |" for row in rows]
    last = history[-1]
    lines += ["", f"Round {last['round']}: {'promoted' if last['promoted'] else 'not promoted'} "
              f"({last['promotion_reason']}); dataset {last['dataset_tag']} md5 `{last['dataset_md5']}`."]
    return "\n".join(lines)


def lineage_markdown(summary: dict, lineage: dict, *, method: str, parent: int | None, code_commit: str) -> str:
    """A round's story for the UI: what trained it on which data, and what the gate decided."""
    decision = "promoted" if summary["promoted"] else f"not promoted (champion stays round {summary['champion_round']})"
    rows = [("method", method), ("reference (parent) round", NONE if parent is None else parent),
            ("dataset", f"`{lineage['git_tag']}` md5 `{lineage['dataset_md5']}` commit `{lineage['git_commit'][:10]}`"),
            ("config hash", f"`{lineage['config_hash']}`"), ("code commit", f"`{code_commit}`"),
            ("success (validation)", success_text(summary["success_rate"], summary["ci95_low"], summary["ci95_high"])),
            ("paired gain vs champion", gain_text(summary.get("gain_vs_champion"))),
            ("decision", decision), ("reason", summary["promotion_reason"])]
    episodes = lineage["episodes"]
    new = set(lineage["new_episode_ids"])
    sources = Counter(e["source"] for e in episodes)
    robots = Counter(e["episode_id"].split(".")[0] for e in episodes)
    new_by_robot = Counter(e["episode_id"].split(".")[0] for e in episodes if e["episode_id"] in new)
    return "\n".join([
        f"# Round {summary['round']}", "", *_markdown_table(["", ""], rows), "",
        "## Episodes per source", "", *_markdown_table(["source", "episodes"], sorted(sources.items())), "",
        "## Episodes per robot", "",
        *_markdown_table(["robot", "episodes", "new this round"],
                         [(robot, count, new_by_robot[robot]) for robot, count in sorted(robots.items())]), "",
        "## Steps per label", "",
        *_markdown_table(["label", "steps"], [(k, v) for k, v in lineage["label_counts"].items() if v]),
    ])


def code_commit() -> str:
    """The commit of the code that runs (this project's git checkout), or "unknown"."""
    import subprocess

    repository = Path(__file__).resolve().parents[2]
    found = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repository, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else "unknown"


def plotted_values(history: list[dict]) -> list[dict]:
    """The values rounds.png plots, one row per round (a table artifact where the UI cannot
    show the image)."""
    suites = sorted({name for h in history for name in h.get("suites", {})})
    return [{"round": h["round"], "unperturbed": f"{h['success_rate']:.0%}",
             **{name: f"{h['suites'][name]:.0%}" if name in h.get("suites", {}) else NONE for name in suites},
             "takeovers/ep": NONE if h["takeovers_per_episode"] is None else f"{h['takeovers_per_episode']:.2f}",
             "human share": NONE if h["human_step_share"] is None else f"{h['human_step_share']:.0%}"}
            for h in history]


def _markdown_table(header: list[str], rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def text_table(history: list[dict]) -> str:
    rows = table_rows(history)
    if not rows:
        return "no rounds yet"
    header = [k for k in rows[0] if k != "labels"]
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in header}
    lines = ["  ".join(k.ljust(widths[k]) for k in header)]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in header) for r in rows]
    return "\n".join(lines + [""] + [decision_line(h) for h in history])


def decision_line(summary: dict) -> str:
    """A round's success per task and the gate's decision with its reason (which task or
    suite blocked it, when one did)."""
    tasks = "  ".join(f"{task} {rate:.0%}" for task, rate in summary.get("tasks", {}).items())
    decision = "promoted" if summary["promoted"] else "kept the champion"
    return f"round {summary['round']}: {tasks + '; ' if tasks else ''}{decision}: {summary['promotion_reason']}"


def plot(history: list[dict], path: Path) -> Path:
    """Success rate (Wilson 95% CI) and intervention rate per round, plus each suite; each round
    is marked promoted / kept with its paired gain over the champion; each panel has its own legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h["round"] for h in history]
    success = [h["success_rate"] for h in history]
    errors = [[s - h["ci95_low"] for s, h in zip(success, history)], [h["ci95_high"] - s for s, h in zip(success, history)]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.errorbar(rounds, success, yerr=errors, marker="o", capsize=4, label="unperturbed")
    suites = sorted({name for h in history for name in h.get("suites", {})})
    for name in suites:
        left.plot(rounds, [h.get("suites", {}).get(name) for h in history], marker=".", linestyle="--", label=name)
    for h in history:
        gain = h.get("gain_vs_champion")
        label = ("promoted" if h["promoted"] else "kept") + (f"\nΔ {gain_text(gain)}" if gain else "")
        left.annotate(label, (h["round"], h["success_rate"]), textcoords="offset points", xytext=(0, 8),
                      ha="center", fontsize=6)
    left.set(title="success rate per round (95% CI)", xlabel="round", ylabel="success rate", ylim=(0, 1))
    left.legend(fontsize=7)
    collected = [h for h in history if h["takeovers_per_episode"] is not None]
    right.plot([h["round"] for h in collected], [h["human_step_share"] for h in collected], marker="o",
               color="tab:blue", label="human-step share")
    right.set(title="intervention rate while collecting", xlabel="round", ylabel="human-step share", ylim=(0, 1))
    takeovers = right.twinx()
    takeovers.plot([h["round"] for h in collected], [h["takeovers_per_episode"] for h in collected], marker="s",
                   color="tab:orange", label="takeovers / episode")
    takeovers.set(ylabel="takeovers / episode", ylim=(0, None))
    for axis in (left, right):
        axis.set_xticks(rounds)
    lines, labels = right.get_legend_handles_labels()
    more_lines, more_labels = takeovers.get_legend_handles_labels()
    right.legend(lines + more_lines, labels + more_labels, fontsize=7, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
