"""The video-to-text ranking page: for sampled videos, the captions that score highest.

For each sampled video (one with at least one valid caption): its player or id, its own
captions, the rank of its best own caption among all valid captions of the split (one plus the
number of captions with strictly higher similarity, as the v2t metric ranks it with ties in
its favour), and the ``top_k`` captions with the video they belong to, each of the video's own
captions marked as a hit. Works for one or many captions per video.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from report.html_page import caption_list, document, esc, href, metrics_table
from report.sampling import check_inputs, sample, valid_query_mask
from report.sampling import top_k as best_k
from report.videos import video_cell
from utils.atomic import write_text_atomic

V2T_SUFFIX = "-v2t"


def v2t_path(t2v_page: Path) -> Path:
    """``web/.../test.html`` -> ``web/.../test-v2t.html``."""
    t2v_page = Path(t2v_page)
    return t2v_page.with_name(f"{t2v_page.stem}{V2T_SUFFIX}{t2v_page.suffix}")


def ranking_nav(t2v_page: Path) -> str:
    """Links between the text-to-video page ``t2v_page`` and its video-to-text page."""
    return (f"<nav><a href=\"{href(Path(t2v_page).name)}\">Text → video</a>"
            f"<a href=\"{href(v2t_path(t2v_page).name)}\">Video → text</a></nav>")


def write_v2t_page(
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
    video_urls: dict[str, str] | None = None,
) -> Path:
    """Write the video-to-text page of ``num_queries`` videos sampled with
    ``np.random.default_rng(seed)``; the other arguments as in
    :func:`report.ranking_page.write_ranking_page` (``top_k`` at most the number of valid captions).

    Only the sampled videos' columns of ``sims`` are read. Returns ``path``, written atomically.
    """
    path = Path(path)
    sims, num_videos, num_slots = check_inputs(sims, captions, video_ids, num_queries, top_k)
    video_urls = video_urls or {}
    valid = valid_query_mask(num_videos, num_slots, query_masks, captions)       # [N, Q]
    valid_rows = valid.reshape(-1)
    videos = sample(np.flatnonzero(valid.any(axis=1)), num_queries, seed)       # [S]
    top_k = max(1, min(top_k, int(valid_rows.sum())))
    scores = np.asarray(sims[:, videos], dtype=np.float64).T                    # [S, N*Q]
    scores[:, ~valid_rows] = -np.inf
    own = scores.reshape(videos.size, num_videos, num_slots)[np.arange(videos.size), videos]  # [S, Q]
    best_own = own.max(axis=1)
    rank = 1 + np.count_nonzero(scores > best_own[:, None], axis=1)
    top_rows, top_sim = best_k(scores, top_k)                                   # [S, k]
    page_title = f"{title} · video → text"

    body = [
        "<header>",
        f"<h1>{esc(page_title)}</h1>",
        ranking_nav(path.with_name(path.stem.removesuffix(V2T_SUFFIX) + path.suffix)),
        *metrics_table(metrics),
        f"<p class=\"note\">Video → text: {num_videos} videos, {int(valid_rows.sum())} valid captions; showing "
        f"{videos.size} videos sampled with seed {seed}. Rank = 1 + number of captions with strictly higher "
        "similarity than the video's best own caption. ✓ marks the video's own captions.</p>",
        "</header>",
        "<main>",
    ]
    for n, video in enumerate(videos):
        video = int(video)
        body += [
            "<section class=\"query\">",
            f"<h2>Video {n + 1} · <span class=\"vid\">{esc(video_ids[video])}</span></h2>",
            f"<p>{video_cell(video_ids[video], video_urls)} best own caption: rank {int(rank[n])} of "
            f"{int(valid_rows.sum())}, similarity {best_own[n]:.4f}</p>",
            *caption_list(captions[video], None, f"Its {len(captions[video])} caption(s)"),
            "<table class=\"ranking\">",
            "<thead><tr><th>Rank</th><th>Hit</th><th>Caption</th><th>Of video</th><th>Similarity</th></tr></thead>",
            "<tbody>",
        ]
        for position, (row, score) in enumerate(zip(top_rows[n], top_sim[n]), start=1):
            owner, slot = divmod(int(row), num_slots)
            hit = owner == video
            row_class = " class=\"gt\"" if hit else ""
            body.append(
                f"<tr{row_class}><td class=\"num\">{position}</td><td class=\"hit\">{'✓' if hit else ''}</td>"
                f"<td>{esc(captions[owner][slot])}</td><td class=\"vid\">{esc(video_ids[owner])}</td>"
                f"<td class=\"num\">{score:.4f}</td></tr>"
            )
        body += ["</tbody>", "</table>", "</section>"]
    if videos.size == 0:
        body.append("<p class=\"note\">No videos with valid captions to show.</p>")
    body.append("</main>")
    return write_text_atomic(path, document(page_title, body))
