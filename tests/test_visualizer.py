"""Tests for the static HTML ranking page (report/ranking_page.py)."""
from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from report.ranking_page import write_ranking_page
from report.v2t_page import write_v2t_page
from utils.registry import VISUALIZERS

METRICS = {
    "t2v_metrics": {"R1": 10.0, "R5": 30.123, "R10": 45.0, "R50": 80.0, "MedR": 12.0,
                    "MeanR": 40.5, "geometric_mean_R1-R5-R10": 23.456},
    "v2t_metrics": {"R1": 11.0, "R5": 31.0, "R10": 46.0, "R50": 81.0, "MedR": 11.0,
                    "MeanR": 39.0, "geometric_mean_R1-R5-R10": 24.0},
}

VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                 "source", "track", "wbr"}


class TagChecker(HTMLParser):
    """Records start tags, text and nesting errors of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.start_tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start_tags.append(tag)
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: Path) -> TagChecker:
    """Parse ``page`` and return the checker after closing it."""
    checker = TagChecker()
    checker.feed(page.read_text(encoding="utf-8"))
    checker.close()
    return checker


def make_inputs(num_videos: int = 12, num_slots: int = 3, seed: int = 1):
    """Random sims ``[N*Q, N]``, a mask ``[N, Q]`` with some missing captions, captions, ids."""
    rng = np.random.default_rng(seed)
    sims = rng.standard_normal((num_videos * num_slots, num_videos)).astype(np.float32)
    lengths = rng.integers(1, num_slots + 1, size=num_videos)
    masks = (np.arange(num_slots)[None, :] < lengths[:, None]).astype(np.float32)
    captions = [[f"video {v} caption {k}" for k in range(lengths[v])] for v in range(num_videos)]
    video_ids = [f"vid{v:03d}" for v in range(num_videos)]
    return sims, masks, captions, video_ids


def query_captions(page: Path) -> list[str]:
    """The query captions shown on ``page``, in order."""
    return re.findall(r'<p class="caption">(.*?)</p>', page.read_text(encoding="utf-8"))


def query_blocks(page: Path) -> list[str]:
    """The HTML of each query section of ``page``."""
    return re.findall(r'<section class="query">(.*?)</section>',
                      page.read_text(encoding="utf-8"), flags=re.S)


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=4, num_slots=2)
    payload = "<script>alert(1)</script>"
    captions = [[payload] + c[1:] for c in captions]
    video_ids[0] = '<img src=x onerror="alert(2)">'
    title = "CE <b>&</b> run"
    page = write_ranking_page(tmp_path / "index.html", sims, masks, captions, video_ids,
                              METRICS, title, num_queries=100)
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "<b>" not in text
    assert html.escape(payload) in text
    assert html.escape(title) in text
    checker = parse(page)
    assert "script" not in checker.start_tags
    assert "img" not in checker.start_tags
    assert payload in "".join(checker.text)


def test_same_seed_same_sample(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=30, num_slots=4)
    state = np.random.get_state()
    pages = [write_ranking_page(tmp_path / name, sims, masks, captions, video_ids, METRICS,
                                "t", num_queries=10, seed=seed)
             for name, seed in (("a.html", 3), ("b.html", 3), ("c.html", 4))]
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])
    assert query_blocks(pages[0]) == query_blocks(pages[1])
    assert len(query_captions(pages[0])) == 10
    assert query_captions(pages[0]) != query_captions(pages[2])


def test_masked_rows_never_shown(tmp_path: Path) -> None:
    num_videos, num_slots = 10, 3
    sims, _, _, video_ids = make_inputs(num_videos, num_slots)
    masks = np.ones((num_videos, num_slots))
    masks[:, 1:] = 0  # only the first caption of each video is a query
    captions = [[f"valid {v}", f"MASKED {v}", f"MASKED {v}b"] for v in range(num_videos)]
    page = write_ranking_page(tmp_path / "index.html", sims, masks, captions, video_ids,
                              METRICS, "t", num_queries=1000)
    shown = query_captions(page)
    assert sorted(shown) == sorted(f"valid {v}" for v in range(num_videos))


def test_missing_captions_are_never_queries_without_mask(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=8, num_slots=3)
    page = write_ranking_page(tmp_path / "index.html", sims, None, captions, video_ids,
                              METRICS, "t", num_queries=1000)
    assert len(query_captions(page)) == int(masks.sum())


def test_mask_without_caption_is_rejected(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=5, num_slots=3)
    with pytest.raises(ValueError):
        write_ranking_page(tmp_path / "index.html", sims, np.ones_like(masks),
                           [c[:1] for c in captions], video_ids, METRICS, "t")


def test_gt_rank_on_hand_made_matrix(tmp_path: Path) -> None:
    # 4 videos, 1 caption each; row v is the caption of video v.
    sims = np.array([
        [0.9, 0.1, 0.2, 0.3],   # gt 0 first            -> rank 1
        [0.8, 0.5, 0.7, 0.1],   # gt 1 behind 0.8, 0.7  -> rank 3
        [0.4, 0.6, 0.1, 0.2],   # gt 2 last             -> rank 4
        [0.3, 0.5, 0.3, 0.5],   # gt 3 tied with 1      -> rank 1 (optimistic)
    ])
    captions = [[f"cap{v}"] for v in range(4)]
    video_ids = [f"v{v}" for v in range(4)]
    page = write_ranking_page(tmp_path / "index.html", sims, None, captions, video_ids,
                              METRICS, "t", num_queries=4, top_k=2)
    found = {}
    for block in query_blocks(page):
        caption = re.search(r'<p class="caption">(.*?)</p>', block).group(1)
        match = re.search(r"rank (\d+) of 4, similarity ([0-9.]+)", block)
        found[caption] = (int(match.group(1)), match.group(2))
    assert found == {"cap0": (1, "0.9000"), "cap1": (3, "0.5000"),
                     "cap2": (4, "0.1000"), "cap3": (1, "0.5000")}


def test_top_k_sorted_and_gt_highlighted(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=40, num_slots=2, seed=5)
    rows = np.flatnonzero(masks.reshape(-1))
    sims[rows, rows // 2] = 10.0  # every ground truth retrieved first
    page = write_ranking_page(tmp_path / "index.html", sims, masks, captions, video_ids,
                              METRICS, "t", num_queries=15, top_k=5)
    blocks = query_blocks(page)
    assert len(blocks) == 15
    id_to_index = {vid: i for i, vid in enumerate(video_ids)}
    for block in blocks:
        caption = re.search(r'<p class="caption">(.*?)</p>', block).group(1)
        video, slot = (int(x) for x in re.match(r"video (\d+) caption (\d+)", caption).groups())
        row = video * 2 + slot
        entries = re.findall(r'<tr( class="gt")?><td class="num">(\d+)</td><td class="hit">(✓?)</td>'
                             r'<td class="vid"><span class="vid">(.*?)</span></td><td class="num">([-0-9.]+)</td>'
                             r"<td>(.*?)</td></tr>", block)
        assert [int(e[1]) for e in entries] == [1, 2, 3, 4, 5]
        scores = [float(e[4]) for e in entries]
        assert scores == sorted(scores, reverse=True)
        expected = np.sort(sims[row])[::-1][:5]
        np.testing.assert_allclose(scores, expected, atol=5e-5)
        assert entries[0][0] and entries[0][2] == "✓" and entries[0][3] == video_ids[video]
        assert not any(e[0] or e[2] for e in entries[1:])
        for entry in entries:
            assert entry[5] == captions[id_to_index[entry[3]]][0]


def test_page_is_well_formed(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs()
    page = write_ranking_page(tmp_path / "index.html", sims, masks, captions, video_ids,
                              METRICS, "CE on MSRVTT", num_queries=5)
    checker = parse(page)
    assert checker.errors == []
    assert checker.stack == []
    assert {"script", "link", "img", "video"}.isdisjoint(checker.start_tags)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "30.12" in text and "23.46" in text and "40.50" in text


def test_other_metrics_get_a_table_of_their_own(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs()
    relevance = {"nDCG_vt": 0.41234, "nDCG_tv": 0.2, "nDCG_avg": 0.30617, "mAP_vt": 0.001, "mAP_tv": 0.0,
                 "mAP_avg": 0.0005}
    page = write_ranking_page(tmp_path / "index.html", sims, masks, captions, video_ids,
                              {**METRICS, "relevance_metrics": relevance}, "CE+RANP", num_queries=5)
    checker = parse(page)
    assert checker.errors == [] and checker.stack == []
    tables = re.findall(r'<table class="metrics">.*?</table>', page.read_text(encoding="utf-8"), flags=re.S)
    assert len(tables) == 2 and "30.12" in tables[0]
    assert "<caption>relevance_metrics</caption>" in tables[1]
    assert "<th>nDCG_avg</th>" in tables[1] and "0.4123" in tables[1] and "0.3062" in tables[1]


def test_written_atomically(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs()
    target = tmp_path / "web" / "exp" / "index.html"
    returned = write_ranking_page(target, sims, masks, captions, video_ids, METRICS, "first")
    assert returned == target
    assert os.listdir(target.parent) == ["index.html"]
    write_ranking_page(target, sims, masks, captions, video_ids, METRICS, "second")
    assert os.listdir(target.parent) == ["index.html"]
    assert "<h1>second</h1>" in target.read_text()


def test_failed_write_leaves_previous_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sims, masks, captions, video_ids = make_inputs()
    target = tmp_path / "index.html"
    write_ranking_page(target, sims, masks, captions, video_ids, METRICS, "first")
    before = target.read_text()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_ranking_page(target, sims, masks, captions, video_ids, METRICS, "second")
    assert os.listdir(tmp_path) == ["index.html"]
    assert target.read_text() == before


def test_large_matrix_only_sampled_rows(tmp_path: Path) -> None:
    num_videos, num_slots = 500, 20
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((num_videos * num_slots, num_videos)).astype(np.float32)
    captions = [[f"c{v}.{k}" for k in range(num_slots)] for v in range(num_videos)]
    video_ids = [str(v) for v in range(num_videos)]
    page = write_ranking_page(tmp_path / "index.html", sims, None, captions, video_ids,
                              METRICS, "big", num_queries=50, top_k=5)
    assert len(query_blocks(page)) == 50


def test_expert_weights_renormalised_over_the_available_experts(tmp_path: Path) -> None:
    sims = np.array([[0.9, 0.1], [0.2, 0.8]])
    moe = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    available = np.array([[1, 0, 1], [1, 1, 1]])
    page = write_ranking_page(tmp_path / "p.html", sims, None, [["c0"], ["c1"]], ["v0", "v1"], METRICS, "t",
                              num_queries=2, experts=["rgb", "<audio>", "ocr"], moe_weights=moe,
                              availability=available)
    first = query_blocks(page)[0]
    assert "<th>&lt;audio&gt;</th>" in first
    assert re.findall(r"<td class=\"(?:off)?\">(yes|missing)</td>", first) == ["yes", "missing", "yes"]
    used = re.search(r"Weight in the score</th>(.*?)</tr>", first).group(1)
    assert re.findall(r"</span>([0-9.]+)</td>", used) == ["0.714", "0.000", "0.286"]
    assert re.findall(r"MoE weight \(caption\)</th>(.*?)</tr>", first)[0].count("0.300") == 1


def test_ground_truth_captions_are_listed_with_the_query_marked(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=6, num_slots=3, seed=2)
    page = write_ranking_page(tmp_path / "p.html", sims, masks, captions, video_ids, METRICS, "t", num_queries=100)
    for block in query_blocks(page):
        query = re.search(r'<p class="caption">(.*?)</p>', block).group(1)
        video, slot = (int(x) for x in re.match(r"video (\d+) caption (\d+)", query).groups())
        listed = re.findall(r"<li( class=\"this\")?>(.*?)</li>", block)
        assert [text for _, text in listed] == captions[video]
        assert [bool(mark) for mark, _ in listed] == [k == slot for k in range(len(captions[video]))]


def v2t_blocks(page: Path) -> dict[str, tuple[int, list[tuple[bool, str, str]]]]:
    """Video id -> (rank of its best own caption, [(hit, caption, owner id), ...])."""
    found = {}
    for block in query_blocks(page):
        vid = re.search(r'<h2>Video \d+ · <span class="vid">(.*?)</span>', block).group(1)
        rank = int(re.search(r"best own caption: rank (\d+) of", block).group(1))
        rows = re.findall(r'<td class="hit">(✓?)</td><td>(.*?)</td><td class="vid">(.*?)</td>', block)
        found[vid] = (rank, [(bool(hit), caption, owner) for hit, caption, owner in rows])
    return found


def test_v2t_page_on_a_hand_made_matrix(tmp_path: Path) -> None:
    # 3 videos, 2 caption slots; video 2 has one caption. Columns are videos.
    sims = np.array([
        [0.9, 0.0, 0.1],   # v0 c0
        [0.2, 0.5, 0.7],   # v0 c1
        [0.8, 0.6, 0.0],   # v1 c0
        [0.1, 0.4, 0.3],   # v1 c1
        [0.3, 0.1, 0.2],   # v2 c0
        [5.0, 5.0, 5.0],   # v2 slot 1: no caption, never shown or counted
    ])
    captions = [["a0", "a1"], ["b0", "b1"], ["c0"]]
    page = write_v2t_page(tmp_path / "p-v2t.html", sims, None, captions, ["v0", "v1", "v2"], METRICS, "t",
                          num_queries=3, top_k=3)
    found = v2t_blocks(page)
    assert found["v0"] == (1, [(True, "a0", "v0"), (False, "b0", "v1"), (False, "c0", "v2")])
    assert found["v1"] == (1, [(True, "b0", "v1"), (False, "a1", "v0"), (True, "b1", "v1")])
    assert found["v2"] == (3, [(False, "a1", "v0"), (False, "b1", "v1"), (True, "c0", "v2")])
    assert 'href="p.html"' in page.read_text()


def test_v2t_page_escapes_and_samples_locally(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=20, num_slots=2)
    captions[3][0] = "<script>alert(1)</script>"
    state = np.random.get_state()
    page = write_v2t_page(tmp_path / "p-v2t.html", sims, masks, captions, video_ids, METRICS, "t <i>",
                          num_queries=20, top_k=40)
    assert np.array_equal(state[1], np.random.get_state()[1])
    text = page.read_text()
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<i>" not in text
    assert len(query_blocks(page)) == 20
    valid = int(masks.sum())
    for _, rows in v2t_blocks(page).values():
        assert len(rows) == valid  # top_k is capped at the number of valid captions


def test_factory_writes_both_pages_with_videos_where_files_exist(tmp_path: Path) -> None:
    sims, masks, captions, video_ids = make_inputs(num_videos=6, num_slots=2)
    videos = tmp_path / "src"
    videos.mkdir()
    (videos / "vid000.mp4").write_bytes(b"")
    (videos / "vid002.webm").write_bytes(b"")
    (videos / "notes.txt").write_text("")
    writer = VISUALIZERS.build({"type": "RankingPage", "args": {"num_queries": 100, "top_k": 6,
                                                                 "src_video_dir": str(videos)}})
    page = writer(tmp_path / "web" / "test.html", sims, masks, captions, video_ids, METRICS, "t")
    text, v2t = page.read_text(), (tmp_path / "web" / "test-v2t.html").read_text()
    assert (tmp_path / "web" / "videos").resolve() == videos.resolve()
    for html_text in (text, v2t):
        sources = set(re.findall(r'<video controls preload="none" src="([^"]+)">', html_text))
        assert sources == {"videos/vid000.mp4", "videos/vid002.webm"}
    assert (tmp_path / "web" / "videos" / "vid000.mp4").is_file()

    no_videos = VISUALIZERS.build({"type": "RankingPage", "args": {"src_video_dir": str(tmp_path / "absent")}})
    page = no_videos(tmp_path / "other" / "test.html", sims, masks, captions, video_ids, METRICS, "t")
    assert "<video" not in page.read_text() and not (tmp_path / "other" / "videos").exists()
