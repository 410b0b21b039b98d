"""The report's figures (matplotlib, drawn off screen), as base64 PNG for a self-contained page."""

from __future__ import annotations

import base64
import io
from typing import Any

from harness.analysis.records import TaskSummary


def png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(s: TaskSummary) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(s.rows) + 1.2))
    names = [r.variant for r in s.rows]
    vals = [r.metric.value for r in s.rows]
    err = [[r.metric.value - r.metric.low for r in s.rows], [r.metric.high - r.metric.value for r in s.rows]]
    ax.barh(names, vals, xerr=err, color=["tab:orange" if r.is_adapter else "tab:blue" for r in s.rows], capsize=3)
    ax.set_xlabel(f"{s.metric} (95% CI)")
    ax.set_title(f"{s.task}: prompts (blue) vs adapters (orange)")
    out.append(("Metric per variant", png(fig)))
    if s.learning_curve:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [c[0] for c in s.learning_curve]
        ax.errorbar(
            xs,
            [c[1] for c in s.learning_curve],
            yerr=[[c[1] - c[2] for c in s.learning_curve], [c[3] - c[1] for c in s.learning_curve]],
            marker="o",
            color="tab:orange",
            label="LoRA adapter",
            capsize=3,
        )
        for r in s.rows:
            if not r.is_adapter:
                ax.axhline(r.metric.value, linestyle="--", linewidth=1, label=r.variant)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel(s.metric)
        ax.legend(fontsize=8)
        ax.set_title(f"{s.task}: learning curve")
        out.append(("Learning curve", png(fig)))
    if s.efforts:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for e in s.efforts:
            color = "tab:blue" if e.side == "prompt" else "tab:orange"
            axes[0].plot([c[0] for c in e.curve], [c[1] for c in e.curve], marker="o", color=color, label=e.label)
            axes[1].plot([c[2] for c in e.curve], [c[1] for c in e.curve], marker="o", color=color, label=e.label)
        axes[0].set_xlabel("trials")
        axes[1].set_xlabel("device-seconds")
        axes[0].set_ylabel(f"expected best validation {s.metric}")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{s.task}: tuning effort of each side (expected maximum over random subsets of trials)")
        out.append(("Equal effort", png(fig)))
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in s.rows:
        ax.scatter(r.cost_per_1k, r.metric.value, color="tab:orange" if r.is_adapter else "tab:blue")
        ax.annotate(r.variant, (r.cost_per_1k, r.metric.value), fontsize=7)
    ax.set_xlabel("cost per 1,000 requests ($)")
    ax.set_ylabel(s.metric)
    ax.set_title(f"{s.task}: quality against cost")
    out.append(("Quality against cost", png(fig)))
    return out
