"""Sweep results -> a trials table, sensitivity per hyperparameter, a heatmap for two, the spread."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from harness.core.console import make_console
from harness.core.files import atomic_write
from harness.experiment.search import SweepSummary, heatmap
from harness.report.plots import png

if TYPE_CHECKING:
    import pandas as pd


def trials_table(s: SweepSummary, usd_per_hour: float) -> pd.DataFrame:
    import pandas as pd  # a second of import that only a sweep's report needs

    rows = []
    for t in s.trials:
        rows.append(
            {
                "trial": t.number,
                **t.params,
                f"val {s.metric}": round(t.metric, 4),
                "train loss": None if t.train_loss is None else round(t.train_loss, 4),
                "val loss": None if t.val_loss is None else round(t.val_loss, 4),
                "wall s": round(t.wall_s, 1),
                "device s": round(t.device_s, 1),
                "cost $": round(t.cost(usd_per_hour), 4),
                "best": "★" if t is s.best else "",
            }
        )
    return pd.DataFrame(rows)


def to_markdown(s: SweepSummary, task: str, usd_per_hour: float) -> str:
    lines = [
        f"# Sweep: {task}",
        "",
        f"Best trial #{s.best.number} ({', '.join(f'{k}={v}' for k, v in s.best.params.items())}): "
        f"validation {s.metric} {s.best.metric:.4f}; median {s.median:.4f}; **spread best − median "
        f"{s.spread:+.4f}** — the part of the fine-tuning result that is owed to tuning.",
        "",
        trials_table(s, usd_per_hour).to_markdown(index=False),
        "",
        "## Sensitivity (mean validation metric)",
        "",
    ]
    for name, points in s.sensitivity.items():
        lines.append(f"- {name}: " + ", ".join(f"{v} → {m:.4f} (n={n})" for v, m, n in points))
    return "\n".join(lines) + "\n"


def plots(s: SweepSummary) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    names = list(s.sensitivity)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        pts = s.sensitivity[name]
        ax.plot([str(v) for v, _, _ in pts], [m for _, m, _ in pts], marker="o")
        ax.set_xlabel(name)
        ax.set_ylabel(f"val {s.metric}")
    out.append(("Sensitivity", png(fig)))
    if len(names) >= 2:
        x, y = names[0], names[1]
        cells = heatmap(s.trials, x, y)
        xs, ys = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
        grid = [[cells.get((a, b), float("nan")) for a in xs] for b in ys]
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        im = ax.imshow(grid, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        fig.colorbar(im, ax=ax, label=f"val {s.metric}")
        out.append((f"{x} × {y}", png(fig)))
    return out


def write(folder: Path, s: SweepSummary, task: str, usd_per_hour: float) -> None:
    md = to_markdown(s, task, usd_per_hour)
    atomic_write(folder / "sweep.md", md)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {task}</title></head><body>",
        f"<h1>Sweep: {task}</h1>",
        trials_table(s, usd_per_hour).to_html(index=False),
    ]
    parts += [f"<h3>{t}</h3><img src='data:image/png;base64,{d}'>" for t, d in plots(s)]
    atomic_write(folder / "sweep.html", "\n".join(parts) + "</body></html>")


def print_rich(s: SweepSummary, usd_per_hour: float) -> Any:

    df = trials_table(s, usd_per_hour)
    table = Table(title=f"Sweep trials (validation {s.metric})")
    for c in df.columns:
        table.add_column(str(c))
    for _, row in df.iterrows():
        table.add_row(*[str(v) for v in row])
    console = make_console()
    console.print(table)
    console.print(
        f"best #{s.best.number} {s.best.params}: {s.best.metric:.4f}; median {s.median:.4f}; "
        f"spread best − median {s.spread:+.4f}"
    )
