"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function draws one figure from plain data, writes it atomically as a PNG at ``DPI``
and returns where it went, its size in pixels and a caption for the report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pneumobench.core.atomic import atomic_file
from pneumobench.core.results import RunResult
from pneumobench.training.selection import select_epoch

__all__ = ["DPI", "Written", "effects", "epoch_selection", "learning_curves", "overlays", "seed_spread"]

DPI = 100
WIDE_IN = 10.0  # width of the single-plot figures, inches
PANEL_IN = 2.2  # side of one overlay panel, inches
VERDICT_COLOURS = {"REPRODUCED": "tab:green", "CONTRADICTED": "tab:red", "INCONCLUSIVE": "tab:gray"}
PREDICTED = ListedColormap(["red"])
PAPER_STYLE: dict[str, Any] = {
    "marker": "x",
    "color": "tab:red",
    "markersize": 8,
    "markeredgewidth": 2,
    "linestyle": "none",
}


@dataclass(frozen=True)
class Written:
    path: Path
    pixels: tuple[int, int]  # width, height
    caption: str


def _save(figure: Figure, path: Path, caption: str) -> Written:
    with atomic_file(path) as scratch:
        figure.savefig(scratch, dpi=DPI, format="png")
    width, height = (figure.get_size_inches() * DPI).round().astype(int)
    return Written(path, (int(width), int(height)), caption)


def _empty(path: Path, title: str, message: str) -> Written:
    figure = Figure(figsize=(WIDE_IN, 2.0), dpi=DPI)
    figure.suptitle(title)
    figure.text(0.5, 0.45, message, ha="center", va="center", fontsize=12)
    return _save(figure, path, message)


def effects(records: Sequence[dict[str, Any]], path: Path) -> Written:
    """Each judged comparative claim: measured difference with the interval of its decision, the paper's mark, zero."""
    title = "Claimed effects: measured difference (1 - 2 alpha interval) against the paper's"
    shown = [r for r in records if r.get("kind") in ("paired", "best") and r["verdict"] in VERDICT_COLOURS]
    if not shown:
        return _empty(path, title, "no comparative claim was judged from these runs")
    figure = Figure(figsize=(WIDE_IN + 3, 0.42 * len(shown) + 2.2), dpi=DPI, layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(shown))[::-1]
    for row, record in zip(y, shown):
        low, high = record["ci_low"], record["ci_high"]
        colour = VERDICT_COLOURS[record["verdict"]]
        if low == low:  # a CI exists (not NaN)
            ax.plot([low, high], [row, row], color=colour, linewidth=2.5, solid_capstyle="butt")
        ax.plot(record["estimate"], row, "o", color=colour, markersize=7)
        if record.get("paper") is not None:
            ax.plot(record["paper"], row, **PAPER_STYLE)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(
        y,
        [
            f"{r['text']} [{r['metric']}]" if r["kind"] == "paired" else f"{r['text']} [{r['metric']} margin]"
            for r in shown
        ],
        fontsize=9,
    )
    ax.set_xlabel("treatment − control (absolute Dice or accuracy); best-of claims: margin over the runner-up")
    ax.grid(axis="x", alpha=0.3)
    figure.suptitle(title)
    handles = [
        Line2D([], [], color=c, marker="o", linewidth=2.5, label=f"measured, {v.lower()}")
        for v, c in VERDICT_COLOURS.items()
    ]
    handles.append(Line2D([], [], label="paper", **PAPER_STYLE))
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9)
    caption = (
        "Each comparative claim's measured difference (dot, coloured by verdict) with the 1 - 2 alpha t-interval "
        "over seeds that its one-sided test at alpha is dual to (bar: wholly past zero exactly when the claim is "
        "decided), the paper's difference (red x) and zero (black line)."
    )
    return _save(figure, path, caption)


def seed_spread(by_config: dict[str, list[RunResult]], table6: Sequence[dict[str, Any]], path: Path) -> Written:
    """Per configuration, every seed's Dice and accuracy, their mean and the paper's value."""
    names = [row["configuration"] for row in table6]
    paper = {row["configuration"]: {m: row[m]["paper"] for m in ("dice", "accuracy")} for row in table6}
    figure = Figure(figsize=(WIDE_IN + 2, 0.38 * len(names) + 1.8), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(names))[::-1]
    for ax, metric, label in zip(axes, ("dice", "accuracy"), ("validation Dice", "validation accuracy")):
        for row, name in zip(y, names):
            runs = by_config[name]
            values = np.array([getattr(r, metric) for r in runs])
            offsets = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(1)
            ax.plot(values, row + offsets, "o", color="tab:blue", alpha=0.7, markersize=5)
            ax.plot(values.mean(), row, "|", color="black", markersize=16, markeredgewidth=2)
            if paper[name][metric] is not None:
                ax.plot(paper[name][metric], row, **PAPER_STYLE)
        ax.set_xlabel(f"{label} (fraction, one dot per seed)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=9)
    axes[0].set_ylabel("configuration")
    figure.suptitle("Seed spread: every seed's validation score per configuration")
    handles = [
        Line2D([], [], color="tab:blue", marker="o", linestyle="none", label="one seed"),
        Line2D([], [], color="black", marker="|", markersize=12, markeredgewidth=2, linestyle="none", label="mean"),
        Line2D([], [], label="paper (Table 6)", **PAPER_STYLE),
    ]
    axes[1].legend(handles=handles, loc="best", fontsize=8)
    caption = (
        "Validation Dice (left) and accuracy (right) of every seed (blue dots), their mean (black bar) and "
        "the paper's Table 6 value (red x) for each configuration."
    )
    return _save(figure, path, caption)


def _curve(runs: list[RunResult], key: str) -> np.ndarray:
    """(seeds, epochs) of one curve, NaN where an epoch was not validated."""
    epochs = max(len(r.curves) for r in runs)
    values = np.full((len(runs), epochs), np.nan)
    for i, run in enumerate(runs):
        for j, point in enumerate(run.curves):
            if point.get(key) is not None:
                values[i, j] = point[key]
    return values


PANEL_COLUMNS = 4  # panels per row of the per-configuration figures


def _panel_grid(count: int, panel_height: float) -> tuple[Figure, np.ndarray]:
    """A figure of ``count`` panels sharing their axes, ``PANEL_COLUMNS`` per row, with room for a
    title and a legend below. Fixed margins in inches: a constrained layout of 16 panels costs more
    than the drawing."""
    columns = min(PANEL_COLUMNS, count)
    rows = math.ceil(count / columns)
    width, height = 3.2 * columns + 0.6, panel_height * rows + 1.0
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.subplots_adjust(
        left=0.7 / width, right=1 - 0.15 / width, top=1 - 0.6 / height, bottom=0.85 / height, wspace=0.08, hspace=0.3
    )
    return figure, figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()


def _label_panels(axes: np.ndarray, count: int, ylabel: str) -> None:
    """Hide the unused panels; label the epoch axis of the bottom row and ``ylabel`` on the left column."""
    columns = min(PANEL_COLUMNS, count)
    rows = math.ceil(count / columns)
    for ax in axes[count:]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * columns :]:
        ax.set_xlabel("epoch")
    for ax in axes[::columns]:
        ax.set_ylabel(ylabel)


def learning_curves(by_config: dict[str, list[RunResult]], path: Path) -> Written:
    """Validation Dice and accuracy per epoch per configuration: mean line, band over seeds."""
    names = list(by_config)
    figure, axes = _panel_grid(len(names), panel_height=2.5)
    seeds = sorted({len(runs) for runs in by_config.values()})
    for ax, name in zip(axes, names):
        runs = by_config[name]
        epochs = np.arange(1, max(len(r.curves) for r in runs) + 1)
        for key, colour, label in (("val_dice", "tab:blue", "Dice"), ("val_accuracy", "tab:orange", "accuracy")):
            values = _curve(runs, key)
            seen = ~np.isnan(values).all(axis=0)
            mean = np.nanmean(np.where(seen, values, 0.0), axis=0)
            ax.plot(epochs[seen], mean[seen], "-o", color=colour, markersize=3, label=f"{label}, mean")
            ax.fill_between(
                epochs[seen],
                np.nanmin(values[:, seen], axis=0),
                np.nanmax(values[:, seen], axis=0),
                color=colour,
                alpha=0.25,
                linewidth=0,
                label=f"{label}, range over seeds",
            )
        stages = [point["stage"] for point in runs[0].curves]
        for epoch, (before, after) in enumerate(itertools.pairwise(stages), start=1):
            if after != before:
                ax.axvline(epoch + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    _label_panels(axes, len(names), "validation score")
    handles, _labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="gray", linestyle="--", label="stage 1 | stage 2"))
    figure.legend(handles=handles, loc="lower center", ncols=5, fontsize=8, frameon=False)
    seed_text = "/".join(str(n) for n in seeds)
    figure.suptitle(f"Learning curves: validation Dice and accuracy per epoch ({seed_text} seeds per configuration)")
    caption = (
        "Per configuration, validation Dice (blue) and accuracy (orange) after each epoch: the mean over seeds "
        "(line) and the range from the worst to the best seed (band); the dashed line ends stage 1 "
        "(frozen encoder)."
    )
    return _save(figure, path, caption)


def overlays(by_config: dict[str, list[RunResult]], dataset, directory: Path) -> dict[str, Written]:
    """Per kept validation image: the image with its ground truth, then each configuration's
    predicted mask (the lowest seed that kept predictions), with that mask's Dice in the title."""
    from pneumobench.data.rle import decode
    from pneumobench.training.metrics import dice_per_image

    kept = [r for runs in by_config.values() for r in runs if r.examples]
    if not kept:
        return {}
    seed = min(r.seed for r in kept)
    position = {image_id: index for index, image_id in enumerate(dataset.ids)}
    # Positives first, smallest mask first; then negatives (stored results sort their keys).
    image_ids = sorted(
        next(r for r in kept if r.seed == seed).examples,
        key=lambda i: (not dataset.labels[position[i]], int(np.asarray(dataset.masks[position[i]]).sum()), position[i]),
    )
    names = list(by_config)
    columns = min(6, len(names) + 1)
    rows = math.ceil((len(names) + 1) / columns)
    written = {}
    for number, image_id in enumerate(image_ids, start=1):
        index = position[image_id]
        image, truth = np.asarray(dataset.images[index]), np.asarray(dataset.masks[index]).astype(bool)
        label = "positive" if dataset.labels[index] else "negative"
        figure = Figure(figsize=(PANEL_IN * columns, PANEL_IN * rows + 0.9), dpi=DPI, layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        _draw(axes[0], image, truth, None, "ground truth")
        for ax, name in zip(axes[1:], names):
            run = next((r for r in by_config[name] if r.seed == seed and image_id in r.examples), None)
            if run is None:
                _draw(ax, image, truth, None, f"{name}\nno prediction kept")
                continue
            predicted = decode(run.examples[image_id], truth.shape)
            dice = float(dice_per_image(predicted[None], truth[None])[0])
            _draw(ax, image, truth, predicted, f"{name}\nDice {dice:.3f}")
        for ax in axes[len(names) + 1 :]:
            ax.set_visible(False)
        side = image.shape[0]
        figure.suptitle(
            f"Validation image {image_id} ({label}, ground truth {int(truth.sum())} px of {side}x{side}), seed {seed}\n"
            "green outline: ground truth; red: predicted mask (probability > 0.5)",
            fontsize=10,
        )
        name = f"overlay_{number}"
        written[name] = _save(
            figure,
            directory / f"overlay-{number}-{label}.png",
            f"Validation image {image_id} ({label}): ground truth and each configuration's predicted "
            f"mask, seed {seed}, with the Dice of that mask.",
        )
    return written


def _draw(ax, image: np.ndarray, truth: np.ndarray, predicted: np.ndarray | None, title: str) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    if predicted is not None and predicted.any():
        ax.imshow(np.ma.masked_where(~predicted, predicted), cmap=PREDICTED, alpha=0.5, interpolation="nearest")
    if truth.any():
        ax.contour(truth.astype(float), levels=[0.5], colors="lime", linewidths=1.2)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


RULE_MARKERS = {"last": ("s", "tab:gray"), "best-val": ("*", "tab:red"), "best-heldout": ("D", "tab:green")}


def epoch_selection(by_config: dict[str, list[Sequence[dict[str, Any]]]], path: Path, title: str) -> Written:
    """Per configuration, each run's validation Dice per epoch, with the epoch each selection rule
    picks marked on it (the held-out rule only where the runs scored a held-out slice)."""
    names = list(by_config)
    figure, axes = _panel_grid(len(names), panel_height=2.3)
    heldout = any(e.get("heldout_dice") is not None for runs in by_config.values() for run in runs for e in run)
    scores = [
        e["val_dice"] for runs in by_config.values() for run in runs for e in run if e.get("val_dice") is not None
    ]
    low, high = float(np.percentile(scores, 15)), float(max(scores))
    for ax, name in zip(axes, names):
        picks: dict[str, list[tuple[int, float]]] = {rule: [] for rule in RULE_MARKERS}
        for run in by_config[name]:
            points = [(e["epoch"], e["val_dice"]) for e in run if e.get("val_dice") is not None]
            ax.plot(*zip(*points), "-", color="tab:blue", linewidth=1, alpha=0.8)
            for rule in RULE_MARKERS:
                if rule == "best-heldout" and not any(e.get("heldout_dice") is not None for e in run):
                    continue  # this run scored no held-out slice
                epoch = select_epoch(run, rule)
                picks[rule].append((epoch, run[epoch - 1]["val_dice"]))
        for rule, (marker, colour) in RULE_MARKERS.items():
            if picks[rule]:
                ax.plot(*zip(*picks[rule]), marker, color=colour, markersize=7, linestyle="none")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(max(0.0, low - 0.02), min(1.0, high + 0.01))
        ax.grid(alpha=0.3)
    _label_panels(axes, len(names), "validation Dice")
    handles = [Line2D([], [], color="tab:blue", label="validation Dice per epoch (one line per run)")]
    handles += [
        Line2D([], [], marker=marker, color=colour, linestyle="none", label=f"epoch picked by {rule}")
        for rule, (marker, colour) in RULE_MARKERS.items()
        if heldout or rule != "best-heldout"
    ]
    figure.legend(handles=handles, loc="lower center", ncols=4, fontsize=8, frameon=False)
    figure.suptitle(title)
    caption = (
        f"{title}. Per configuration, the validation Dice after each epoch; the marks show the epoch each "
        "rule reports: last (grey square), best on the validation half itself (red star: the authors' rule, "
        "optimistic), best on a held-out slice of the training half (green diamond, where one was scored)."
    )
    return _save(figure, path, caption)
