"""Static HTML ranking pages of an evaluation: text to video (``<split>.html``) and video to
text (``<split>-v2t.html``, :mod:`report.v2t_page`).

The text-to-video page shows, for each sampled query caption: the ground-truth video with its
rank and similarity, all of its captions, the weight each expert gets in the score (MoE
weight, availability and the weight after renormalising over the video's available experts),
and the top-k retrieved videos, each correct hit marked. Videos are shown by id and first
caption, and by an HTML5 player when ``src_video_dir`` holds them (:mod:`report.videos`).
Pages are self-contained (:mod:`report.html_page`).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Callable

import numpy as np

from report.html_page import caption_list, document, esc, metrics_table
from report.sampling import check_inputs, sample, valid_query_mask
from report.sampling import top_k as best_k
from report.v2t_page import ranking_nav, v2t_path, write_v2t_page
from report.videos import link_videos, video_cell
from utils.atomic import write_text_atomic
from utils.config.options import AtLeast, Count
from utils.registry import VISUALIZERS


def expert_table(experts: list[str], weights: np.ndarray, available: np.ndarray) -> list[str]:
    """The experts behind one score: ``weights [M]`` a caption's MoE weights, ``available [M]``
    the video's experts; the weight in the score is renormalised over the available ones."""
    used = weights * available
    used = used / used.sum() if used.sum() > 0 else used

    def cells(values: list[str], classes: list[str]) -> str:
        return "".join(f"<td class=\"{c}\">{v}</td>" for v, c in zip(values, classes))

    bars = [f"<span class=\"bar\" style=\"width: {4 * u:.2f}em\"></span>{u:.3f}" for u in used]
    return [
        "<table class=\"experts\">",
        "<thead><tr><th>Expert</th>" + "".join(f"<th>{esc(name)}</th>" for name in experts) + "</tr></thead>",
        "<tbody>",
        "<tr><th>Ground truth has it</th>" + cells(["yes" if a else "missing" for a in available],
                                                     ["" if a else "off" for a in available]) + "</tr>",
        "<tr><th>MoE weight (caption)</th>" + cells([f"{w:.3f}" for w in weights], ["num"] * len(weights)) + "</tr>",
        "<tr><th>Weight in the score</th>" + cells(bars, ["num"] * len(bars)) + "</tr>",
        "</tbody>",
        "</table>",
    ]


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
    experts: list[str] | None = None,
    moe_weights: np.ndarray | None = None,
    availability: np.ndarray | None = None,
    video_urls: dict[str, str] | None = None,
) -> Path:
    """Write the text-to-video page of sampled query captions.

    The page holds a header (title, links to the video-to-text page, a table of t2v / v2t
    metrics: R1, R5, R10, R50, MedR, MeanR and the geometric mean of R1, R5, R10, with two
    decimals) followed by one block per sampled query: the caption, the ground-truth video with
    its rank and similarity, its captions, the expert weights (when ``experts`` is given) and
    the ``top_k`` retrieved videos (rank, hit mark, id, similarity with four decimals, first
    caption), the ground truth highlighted when listed.

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
        experts: the M expert names, or None for no expert table.
        moe_weights: ``[N*Q, M]`` MoE weights of every caption row (with ``experts``).
        availability: ``[N, M]``, non-zero where a video has the expert (with ``experts``).
        video_urls: video id -> relative URL of its file (``report.videos.link_videos``).

    Returns:
        ``path``, written atomically (temporary file in the same folder, then
        ``os.replace``).

    Raises:
        ValueError: on inconsistent shapes or lengths, ``top_k < 1`` or
            ``num_queries < 0``.
    """
    path = Path(path)
    sims, num_videos, num_slots = check_inputs(sims, captions, video_ids, num_queries, top_k)
    top_k = min(top_k, num_videos)
    video_urls = video_urls or {}
    valid_rows = np.flatnonzero(valid_query_mask(num_videos, num_slots, query_masks, captions))
    rows = sample(valid_rows, num_queries, seed)
    sub = np.asarray(sims[rows], dtype=np.float64)                      # [S, N]
    gt_video = rows // num_slots
    gt_sim = sub[np.arange(rows.size), gt_video]
    gt_rank = 1 + np.count_nonzero(sub > gt_sim[:, None], axis=1)
    top_idx, top_sim = best_k(sub, top_k)

    body = [
        "<header>",
        f"<h1>{esc(title)}</h1>",
        ranking_nav(path),
        *metrics_table(metrics),
        f"<p class=\"note\">Text → video: {num_videos} videos, {valid_rows.size} valid queries; showing "
        f"{rows.size} sampled with seed {seed}. Rank = 1 + number of videos with strictly "
        "higher similarity (ties in favour of the ground truth). ✓ marks the ground truth.</p>",
        "</header>",
        "<main>",
    ]
    for n, row in enumerate(rows):
        video, slot = divmod(int(row), num_slots)
        in_top = bool(np.any(top_idx[n] == video))
        status = (f"<span class=\"gt-tag\">in top {top_k}</span>" if in_top
                  else f"<span class=\"miss\">not in top {top_k}</span>")
        body += [
            "<section class=\"query\">",
            f"<h2>Query {n + 1} · caption {slot + 1} of video "
            f"<span class=\"vid\">{esc(video_ids[video])}</span></h2>",
            f"<p class=\"caption\">{esc(captions[video][slot])}</p>",
            f"<p>Ground truth: {video_cell(video_ids[video], video_urls)} "
            f"rank {int(gt_rank[n])} of {num_videos}, similarity {gt_sim[n]:.4f} ({status})</p>",
            *caption_list(captions[video], slot, f"The ground truth's {len(captions[video])} caption(s)"),
        ]
        if experts is not None:
            body += expert_table(experts, np.asarray(moe_weights)[row], np.asarray(availability)[video] != 0)
        body += [
            "<table class=\"ranking\">",
            "<thead><tr><th>Rank</th><th>Hit</th><th>Video</th><th>Similarity</th>"
            "<th>First caption</th></tr></thead>",
            "<tbody>",
        ]
        for position, (candidate, score) in enumerate(zip(top_idx[n], top_sim[n]), start=1):
            candidate = int(candidate)
            hit = candidate == video
            first_caption = captions[candidate][0] if captions[candidate] else ""
            row_class = " class=\"gt\"" if hit else ""
            body.append(
                f"<tr{row_class}><td class=\"num\">{position}</td>"
                f"<td class=\"hit\">{'✓' if hit else ''}</td>"
                f"<td class=\"vid\">{video_cell(video_ids[candidate], video_urls)}</td>"
                f"<td class=\"num\">{score:.4f}</td>"
                f"<td>{esc(first_caption)}</td></tr>"
            )
        body += ["</tbody>", "</table>", "</section>"]
    if rows.size == 0:
        body.append("<p class=\"note\">No valid queries to show.</p>")
    body.append("</main>")
    return write_text_atomic(path, document(title, body))


def write_ranking_pages(path: Path, sims: np.ndarray, query_masks: np.ndarray | None, captions: list[list[str]],
                        video_ids: list[str], metrics: dict[str, dict[str, float]], title: str,
                        num_queries: int = 50, top_k: int = 5, seed: int = 0,
                        src_video_dir: str | None = None, experts: list[str] | None = None,
                        moe_weights: np.ndarray | None = None, availability: np.ndarray | None = None) -> Path:
    """Write the text-to-video page at ``path`` and the video-to-text page beside it
    (:func:`report.v2t_page.v2t_path`); arguments as in :func:`write_ranking_page`, and
    ``src_video_dir`` a folder of ``<video id>.<mp4|webm|...>`` files (or None). Returns ``path``."""
    path = Path(path)
    video_urls = link_videos(path.parent, src_video_dir, video_ids)
    write_ranking_page(path, sims, query_masks, captions, video_ids, metrics, title, num_queries, top_k, seed,
                       experts, moe_weights, availability, video_urls)
    write_v2t_page(v2t_path(path), sims, query_masks, captions, video_ids, metrics, title, num_queries, top_k,
                   seed, video_urls)
    return path


@VISUALIZERS.register()
def RankingPage(num_queries: Annotated[int, AtLeast(0)] = 50, top_k: Count = 5, seed: int = 0,
                src_video_dir: str | None = None) -> Callable[..., Path]:
    """Config factory (``visualizer.type = "RankingPage"``): a writer of both ranking pages with
    these settings (``num_queries`` sampled queries, and as many sampled videos on the
    video-to-text page; ``top_k`` results each)."""
    return functools.partial(write_ranking_pages, num_queries=num_queries, top_k=top_k, seed=seed,
                             src_video_dir=src_video_dir)
