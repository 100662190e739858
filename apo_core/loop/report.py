"""The per-round report: a PNG plot and a markdown table of the loop's history."""

from __future__ import annotations

from pathlib import Path


def gain_text(gain: dict | None) -> str:
    """A paired difference as "+12% [+4%, +20%]" ("-" when there is none)."""
    if not gain:
        return "-"
    return f"{gain['difference']:+.0%} [{gain['ci95_low']:+.0%}, {gain['ci95_high']:+.0%}]"


def table_rows(history: list[dict]) -> list[dict]:
    """One printable row per round (also the Prefect table artifact)."""
    rows = []
    for h in history:
        takeovers = h["takeovers_per_episode"]
        rows.append({
            "round": h["round"],
            "success": f"{h['success_rate']:.0%} [{h['ci95_low']:.2f}, {h['ci95_high']:.2f}]",
            "gain vs champion": gain_text(h.get("gain_vs_champion")),
            "gain vs round 0": gain_text(h.get("gain_vs_round0")),
            "takeovers/ep": "-" if takeovers is None else f"{takeovers:.2f}",
            "human share": "-" if h["human_step_share"] is None else f"{h['human_step_share']:.0%}",
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


def text_table(history: list[dict]) -> str:
    rows = table_rows(history)
    if not rows:
        return "no rounds yet"
    header = [k for k in rows[0] if k != "labels"]
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in header}
    lines = ["  ".join(k.ljust(widths[k]) for k in header)]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in header) for r in rows]
    return "\n".join(lines)


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
