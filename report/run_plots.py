"""The plots on a run's index page, drawn from its per-epoch history (``report.history``) and
the summary of its test split (``report.eval_summary``)."""
from __future__ import annotations

from report.html_page import esc
from report.plots import bar_chart, box_chart, line_chart
from utils.metric_names import GMEAN_KEY

NO_LIBRARY_NOTE = ("The plots are inline SVG drawn by this project (report/plots.py): they need no plotting "
                   "library, script or network access, so nothing is missing from this page.")


def figure(svg: str, caption: str) -> list[str]:
    """An SVG chart with its caption."""
    return ["<figure class=\"plot\">", svg, f"<figcaption>{esc(caption)}</figcaption>", "</figure>"]


def _val_points(evaluated: list[dict], direction: str, key: str) -> list[tuple[float, float]]:
    """``[(epoch, value), ...]`` of one validation metric over the evaluated epochs that hold it."""
    return [(e["epoch"], e["val"][direction][key]) for e in evaluated if key in e["val"].get(direction, {})]


def history_plots(history: list[dict]) -> list[str]:
    """Training loss (and its parts when there are several), learning rate, and the validation
    recalls and geometric means per epoch."""
    if not history:
        return ["<p class=\"note\">This run has no per-epoch history (history.json).</p>"]
    loss = {"total": [(e["epoch"], e["loss"]) for e in history]}
    parts = list(history[-1].get("loss_parts", {}))
    if len(parts) > 1:
        loss.update({part: [(e["epoch"], e["loss_parts"][part]) for e in history if part in e.get("loss_parts", {})]
                     for part in parts})
    lines = figure(line_chart(loss, "Training loss", "epoch", "mean loss per batch"),
                   "Mean training loss per epoch"
                   + (f", and its parts ({', '.join(parts)})." if len(parts) > 1 else "."))
    lines += figure(line_chart({"lr": [(e["epoch"], e["lr"]) for e in history]}, "Learning rate", "epoch", "lr"),
                    "Learning rate each epoch was trained with.")
    evaluated = [e for e in history if "val" in e]
    recall = {key: points for key in ("R1", "R5", "R10") if (points := _val_points(evaluated, "t2v_metrics", key))}
    if recall:
        lines += figure(line_chart(recall, "Validation recall, text → video", "epoch", "recall (%)"),
                        "Text-to-video recall at 1, 5 and 10 on the validation split after each evaluated epoch.")
    geom = {d: points for d in ("t2v", "v2t") if (points := _val_points(evaluated, f"{d}_metrics", GMEAN_KEY))}
    if geom:
        lines += figure(line_chart(geom, "Validation geometric mean (R1, R5, R10)", "epoch", "geometric mean"),
                        "Geometric mean of R1, R5 and R10 on the validation split, both directions.")
    return lines


def rank_bin_labels(edges: list[int], num_videos: int) -> list[str]:
    """``[1, 2, 4, 8]`` with 6 videos -> ``["1", "2–3", "4–6"]``."""
    labels = []
    for low, high in zip(edges, edges[1:]):
        high = min(high - 1, num_videos)
        labels.append(str(low) if low == high else f"{low}–{high}")
    return labels


def summary_plots(summary: dict | None) -> list[str]:
    """The MoE weight distribution per expert and the ground-truth rank histogram of the test split."""
    if summary is None:
        return ["<p class=\"note\">No test evaluation summary (test-summary.json) yet.</p>"]
    lines: list[str] = []
    moe = summary.get("moe")
    if moe:
        experts = list(moe)
        groups = {group: [moe[name][group] for name in experts] for group in ("available", "missing")}
        lines += figure(box_chart(experts, groups, "MoE weight per expert, test queries", "MoE weight"),
                        "The weight each test caption gives an expert (softmax over all experts, before "
                        "renormalising over the video's available experts), split by whether the ground-truth "
                        "video has that expert. Box: quartiles; line: median; whiskers: min to max; dot: mean.")
    else:
        lines.append("<p class=\"note\">This model does not weigh its experts by MoE weights.</p>")
    histogram = summary.get("rank_histogram")
    if not isinstance(histogram, dict) or not all(key in summary for key in ("num_queries", "num_videos")):
        return lines + ["<p class=\"note\">The test evaluation summary (test-summary.json) has no rank "
                        "histogram.</p>"]
    labels = rank_bin_labels(histogram["edges"], summary["num_videos"])
    lines += figure(bar_chart(labels, histogram["counts"], "Rank of the ground truth, test (text → video)",
                              "rank (doubling bins)", "queries"),
                    f"How many of the {summary['num_queries']} test queries rank their ground-truth video in each "
                    f"bin, out of {summary['num_videos']} videos; bins double in width (log scale).")
    return lines


def run_plots(history: list[dict], summary: dict | None) -> list[str]:
    """All plots of a run's page, and the note that they need nothing else."""
    return ["<div class=\"plots\">", *history_plots(history), *summary_plots(summary), "</div>",
            f"<p class=\"note\">{esc(NO_LIBRARY_NOTE)}</p>"]
