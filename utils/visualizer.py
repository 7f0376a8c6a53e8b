"""Static HTML page showing text-to-video rankings for a sample of queries.

The page is built from similarity scores and captions alone (no source videos are needed):
each retrieved video is represented by its id and its first caption. The output is a single
self-contained HTML5 file (inline CSS, no JavaScript, no external assets) that can be opened
directly or served with ``python3 -m http.server``.
"""
from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Callable

import numpy as np

from utils.atomic import write_text_atomic
from utils.registry import VISUALIZERS

METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R1", "R1"),
    ("R5", "R5"),
    ("R10", "R10"),
    ("R50", "R50"),
    ("MedR", "MedR"),
    ("MeanR", "MeanR"),
    ("geometric_mean_R1-R5-R10", "Geometric mean (R1, R5, R10)"),
)
"""(metric key, column label) pairs of the metrics table, in display order."""

METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("t2v_metrics", "Text → Video"),
    ("v2t_metrics", "Video → Text"),
)
"""(metrics dict key, row label) pairs of the metrics table, in display order."""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.1em; margin: 0 0 0.4em 0; color: #555; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 0.9em; }
section.query { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; margin: 1.2em 0; }
p.caption { font-size: 1.15em; margin: 0.2em 0 0.5em 0; }
.vid { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
tr.gt td { background: #e3f6e3; font-weight: bold; }
.gt-tag { color: #1a7f1a; }
.miss { color: #b00020; }
"""


def _esc(text: str) -> str:
    """HTML-escape a user-supplied string (``&``, ``<``, ``>`` and both quote characters)."""
    return html.escape(str(text), quote=True)


def _valid_query_mask(
    num_videos: int,
    num_slots: int,
    query_masks: np.ndarray | None,
    captions: list[list[str]],
) -> np.ndarray:
    """Boolean ``[N, Q]`` mask of caption slots that may be shown as queries.

    Without ``query_masks`` a slot is valid when the video has a caption at that position.
    With ``query_masks`` the non-zero entries are valid and each must have a caption.
    """
    has_caption = np.arange(num_slots)[None, :] < np.array([len(c) for c in captions])[:, None]
    if query_masks is None:
        return has_caption
    mask = np.asarray(query_masks)
    if mask.shape != (num_videos, num_slots):
        raise ValueError(
            f"query_masks has shape {mask.shape}, expected {(num_videos, num_slots)}"
        )
    mask = mask != 0
    if np.any(mask & ~has_caption):
        v, k = np.argwhere(mask & ~has_caption)[0]
        raise ValueError(f"query_masks marks caption {k} of video {v} as present, "
                         f"but captions[{v}] has only {len(captions[v])} entries")
    return mask


def _rank_sampled(
    sims: np.ndarray, rows: np.ndarray, num_slots: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth rank/similarity and top-k videos for the sampled caption rows only.

    Args:
        sims: ``[N*Q, N]`` caption-to-video similarities.
        rows: ``[M]`` indices of the sampled caption rows.
        num_slots: Q, caption slots per video (row ``v*Q + k`` belongs to video ``v``).
        top_k: number of retrieved videos to return per row, ``1 <= top_k <= N``.

    Returns:
        gt_rank: ``[M]`` 1-based rank of the ground-truth video, i.e. one plus the number of
            videos with strictly higher similarity (ties resolved in favour of the ground
            truth).
        gt_sim: ``[M]`` similarity of the ground-truth video.
        top_idx: ``[M, top_k]`` video indices by decreasing similarity (ties by index).
        top_sim: ``[M, top_k]`` the matching similarities.
    """
    sub = np.asarray(sims[rows], dtype=np.float64)  # [M, N]
    arange = np.arange(len(rows))
    gt_video = rows // num_slots
    gt_sim = sub[arange, gt_video]
    gt_rank = 1 + np.count_nonzero(sub > gt_sim[:, None], axis=1)

    candidates = np.argpartition(-sub, top_k - 1, axis=1)[:, :top_k]  # [M, top_k], unordered
    candidates = np.sort(candidates, axis=1)
    cand_sim = np.take_along_axis(sub, candidates, axis=1)
    order = np.argsort(-cand_sim, axis=1, kind="stable")
    top_idx = np.take_along_axis(candidates, order, axis=1)
    top_sim = np.take_along_axis(cand_sim, order, axis=1)
    return gt_rank, gt_sim, top_idx, top_sim


def _metrics_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    """HTML lines of the metrics table; absent values are shown as an en dash."""
    lines = ["<table class=\"metrics\">", "<thead><tr><th>Direction</th>"]
    lines += [f"<th>{_esc(label)}</th>" for _, label in METRIC_COLUMNS]
    lines.append("</tr></thead>")
    lines.append("<tbody>")
    for key, row_label in METRIC_ROWS:
        values = metrics.get(key, {})
        cells = []
        for metric, _ in METRIC_COLUMNS:
            value = values.get(metric)
            cells.append(f"<td class=\"num\">{'–' if value is None else f'{float(value):.2f}'}</td>")
        lines.append(f"<tr><th>{_esc(row_label)}</th>{''.join(cells)}</tr>")
    lines.append("</tbody>")
    lines.append("</table>")
    return lines


def _other_metrics_tables(metrics: dict[str, dict[str, float]]) -> list[str]:
    """HTML lines of one table per metrics dict not in ``METRIC_ROWS`` (e.g. the nDCG and mAP
    of ``relevance_metrics``): its keys as columns, values with four decimals."""
    lines = []
    for name, values in metrics.items():
        if name in dict(METRIC_ROWS) or not values:
            continue
        lines.append(f"<table class=\"metrics\"><caption>{_esc(name)}</caption>")
        lines.append("<thead><tr>" + "".join(f"<th>{_esc(k)}</th>" for k in values) + "</tr></thead>")
        lines.append("<tbody><tr>" + "".join(f"<td class=\"num\">{float(v):.4f}</td>" for v in values.values())
                     + "</tr></tbody>")
        lines.append("</table>")
    return lines


def write_ranking_page(
    path: Path,
    sims: np.ndarray,
    query_masks: np.ndarray | None,
    captions: list[list[str]],
    video_ids: list[str],
    metrics: dict[str, dict[str, float]],
    title: str,
    num_queries: int = 50,
    top_k: int = 5,
    seed: int = 0,
) -> Path:
    """Write a static HTML page with the text-to-video rankings of sampled queries.

    The page holds a header (title and a table of t2v / v2t metrics: R1, R5, R10, R50, MedR,
    MeanR and the geometric mean of R1, R5, R10, with two decimals) followed by one block per
    sampled query: the query caption, the ground-truth video with its rank and similarity,
    and the ``top_k`` retrieved videos (rank, id, similarity with four decimals and the
    video's first caption as a textual stand-in), the ground truth highlighted when listed.

    The rank of the ground-truth video is one plus the number of videos with strictly higher
    similarity, so ties are resolved optimistically (in favour of the ground truth). The
    top-k list orders tied similarities by video index, so with ties a ground truth of rank
    ``<= top_k`` can be left out of the list. Only the sampled rows are ranked.

    Args:
        path: destination HTML file; parent folders are created.
        sims: ``[N*Q, N]`` similarities of caption rows to the N videos, video-major (row
            ``v*Q + k`` is caption ``k`` of video ``v``).
        query_masks: ``[N, Q]``, non-zero where the caption exists; masked-out rows are never
            shown. When ``None``, slot ``k`` of video ``v`` is valid iff
            ``k < len(captions[v])``.
        captions: ``N`` lists of caption strings (``len(captions[v]) <= Q``).
        video_ids: ``N`` video ids.
        metrics: e.g. ``{"t2v_metrics": {"R1": ..., "MedR": ...}, "v2t_metrics": {...}}``;
            absent directions or values are shown as a dash. Any other entry (e.g.
            ``"relevance_metrics": {"nDCG_avg": ...}``) gets a table of its own.
        title: page title.
        num_queries: number of valid query rows to show (fewer if fewer exist).
        top_k: number of retrieved videos listed per query (at most N).
        seed: seed of the ``np.random.default_rng`` generator used to sample the queries;
            the global numpy RNG is left untouched.

    Returns:
        ``path``, written atomically (temporary file in the same folder, then
        ``os.replace``).

    Raises:
        ValueError: on inconsistent shapes or lengths, ``top_k < 1`` or
            ``num_queries < 0``.
    """
    path = Path(path)
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[1] == 0:
        raise ValueError(f"sims must be a non-empty [N*Q, N] matrix, got shape {sims.shape}")
    num_videos = sims.shape[1]
    if sims.shape[0] % num_videos:
        raise ValueError(f"sims has {sims.shape[0]} rows, not a multiple of N={num_videos}")
    num_slots = sims.shape[0] // num_videos
    if len(captions) != num_videos or len(video_ids) != num_videos:
        raise ValueError(f"expected {num_videos} caption lists and video ids, got "
                         f"{len(captions)} and {len(video_ids)}")
    if any(len(c) > num_slots for c in captions):
        raise ValueError(f"a video has more than Q={num_slots} captions")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if num_queries < 0:
        raise ValueError(f"num_queries must be >= 0, got {num_queries}")
    top_k = min(top_k, num_videos)

    valid_rows = np.flatnonzero(_valid_query_mask(num_videos, num_slots, query_masks, captions))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(valid_rows, size=min(num_queries, valid_rows.size), replace=False))
    gt_rank, gt_sim, top_idx, top_sim = _rank_sampled(sims, rows, num_slots, top_k)

    lines = [
        "<!DOCTYPE html>",
        "<html lang=\"en\">",
        "<head>",
        "<meta charset=\"utf-8\">",
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_esc(title)}</h1>",
        *_metrics_table(metrics),
        *_other_metrics_tables(metrics),
        f"<p class=\"note\">{num_videos} videos, {valid_rows.size} valid queries; showing "
        f"{rows.size} sampled with seed {seed}. Rank = 1 + number of videos with strictly "
        "higher similarity (ties in favour of the ground truth).</p>",
        "</header>",
        "<main>",
    ]
    for n, row in enumerate(rows):
        video, slot = divmod(int(row), num_slots)
        in_top = bool(np.any(top_idx[n] == video))
        status = (f"<span class=\"gt-tag\">in top {top_k}</span>" if in_top
                  else f"<span class=\"miss\">not in top {top_k}</span>")
        lines += [
            "<section class=\"query\">",
            f"<h2>Query {n + 1} · caption {slot + 1} of video "
            f"<span class=\"vid\">{_esc(video_ids[video])}</span></h2>",
            f"<p class=\"caption\">{_esc(captions[video][slot])}</p>",
            f"<p>Ground truth: <span class=\"vid\">{_esc(video_ids[video])}</span>, "
            f"rank {int(gt_rank[n])} of {num_videos}, similarity {gt_sim[n]:.4f} "
            f"({status})</p>",
            "<table class=\"ranking\">",
            "<thead><tr><th>Rank</th><th>Video</th><th>Similarity</th>"
            "<th>First caption</th></tr></thead>",
            "<tbody>",
        ]
        for position, (candidate, score) in enumerate(zip(top_idx[n], top_sim[n]), start=1):
            candidate = int(candidate)
            first_caption = captions[candidate][0] if captions[candidate] else ""
            row_class = " class=\"gt\"" if candidate == video else ""
            lines.append(
                f"<tr{row_class}><td class=\"num\">{position}</td>"
                f"<td class=\"vid\">{_esc(video_ids[candidate])}</td>"
                f"<td class=\"num\">{score:.4f}</td>"
                f"<td>{_esc(first_caption)}</td></tr>"
            )
        lines += ["</tbody>", "</table>", "</section>"]
    if rows.size == 0:
        lines.append("<p class=\"note\">No valid queries to show.</p>")
    lines += ["</main>", "</body>", "</html>", ""]

    write_text_atomic(path, "\n".join(lines))
    return path


@VISUALIZERS.register()
def RankingPage(num_queries: int = 50, top_k: int = 5, seed: int = 0) -> Callable[..., Path]:
    """Config factory (``visualizer.type = "RankingPage"``): a page writer with these settings."""
    return functools.partial(write_ranking_page, num_queries=num_queries, top_k=top_k, seed=seed)
