"""The results site's files (report/site.py), plots (report/plots.py) and test summary
(report/eval_summary.py), checked without a browser."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from site_fixture import EPOCHS, EXPERTS, PLOTS_PER_RUN, make_site, run_inputs

from model.metric import t2v_ranks
from report.eval_summary import rank_bin_edges, summarise
from report.plots import bar_chart, box_chart, line_chart, nice_ticks, tick_label
from report.run_plots import rank_bin_labels
from report.site import find_runs, publish_run, write_site_index

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("saved")
    return save_dir, make_site(save_dir)


def test_site_index_lists_every_run_newest_first(site):
    save_dir, runs = site
    text = (save_dir / "web" / "index.html").read_text()
    links = re.findall(r'<a href="([^"]+)">', text)
    assert links == [f"{models.parent.name}/{models.name}/index.html" for models, _ in reversed(runs)]
    assert all((save_dir / "web" / link).is_file() for link in links)
    assert "123,457" in text  # parameter count of the seed-1 run
    assert not [p for p in (save_dir / "web").rglob("*") if ".partial-" in p.name]  # written atomically


def test_run_page_summarises_the_config_and_every_evaluation(site):
    _, runs = site
    models, web = runs[0]
    text = (web / "index.html").read_text()
    assert "AdamW (lr=0.001)" in text and "appearance, audio, face" in text and "123,456" in text
    assert f"{EPOCHS}, {EPOCHS} trained" in text
    rows = re.findall(r"<tr( class=\"gt\")?><th>(test \(trained_model.pth\)|val)</th><td class=\"num\">(\d+)</td>",
                      text)
    assert [(r[1], int(r[2])) for r in rows] == [("test (trained_model.pth)", EPOCHS)] + [("val", e) for e in
                                                                                        range(1, EPOCHS + 1)]
    assert [bool(r[0]) for r in rows] == [False] * EPOCHS + [True]  # the best epoch's validation row
    assert text.count("<svg") == PLOTS_PER_RUN
    assert 'href="../../index.html"' in text and 'href="test-v2t.html"' in text
    assert "no plotting library" in text


def test_plots_are_well_formed_svg(site):
    _, runs = site
    text = (runs[0][1] / "index.html").read_text()
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.find(f"{SVG}title").text


def test_run_page_without_history_or_test_says_so(tmp_path):
    models, web = tmp_path / "models" / "exp" / "run", tmp_path / "web" / "exp" / "run"
    models.mkdir(parents=True)
    (models / "config.json").write_text(json.dumps({"seed": 3}))
    page = publish_run(models, web).read_text()
    assert "no per-epoch history" in page and "No test evaluation summary" in page and "No evaluation" in page
    assert "<svg" not in page
    index = (tmp_path / "web" / "index.html").read_text()
    assert '<a href="exp/run/index.html">run</a>' in index


def test_run_page_links_only_pages_that_exist(tmp_path):
    models, web = tmp_path / "models" / "exp" / "run", tmp_path / "web" / "exp" / "run"
    models.mkdir(parents=True)
    web.mkdir(parents=True)
    (web / "val.html").write_text("")
    text = publish_run(models, web).read_text()
    assert re.findall(r'<a href="([^"]+)">', text) == ["../../index.html", "val.html"]


def test_publish_outside_the_layout_writes_no_site_index(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    page = publish_run(tmp_path, tmp_path / "web")
    assert page == (tmp_path / "web" / "index.html").resolve()
    assert "All runs" not in page.read_text()
    assert not (tmp_path.parent / "web" / "index.html").exists()


def test_site_text_is_escaped(tmp_path):
    models = tmp_path / "models" / "<img src=x>" / "run"
    models.mkdir(parents=True)
    (models / "config.json").write_text(json.dumps({"name": "<script>x</script>", "experts": {"text_feat": "<b>"}}))
    publish_run(models, tmp_path / "web" / "<img src=x>" / "run")
    for page in (tmp_path / "web" / "index.html", tmp_path / "web" / "<img src=x>" / "run" / "index.html"):
        text = page.read_text()
        assert "<script>x" not in text and "<img src=x>" not in text and "<b>" not in text
    assert "%3Cimg%20src%3Dx%3E/run/index.html" in (tmp_path / "web" / "index.html").read_text()


def test_empty_site(tmp_path):
    assert "No runs yet" in write_site_index(tmp_path).read_text()
    assert find_runs(tmp_path) == []


def test_nice_ticks_cover_the_range():
    for low, high in [(0, 0.155), (0.00095, 0.001), (1, 30), (-3, 7), (5, 5)]:
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 12
        steps = np.diff(ticks)
        np.testing.assert_allclose(steps, steps[0])
    assert nice_ticks(1, 2, integer=True) == [1.0, 2.0]


def test_tick_labels_are_short():
    assert [tick_label(v) for v in (2500.0, 0.0, 0.001, 2.5e-05, 0.15, -4.0)] == \
        ["2500", "0", "0.001", "2.5e-05", "0.15", "-4"]


def test_charts_draw_one_mark_per_value():
    lines = ET.fromstring(line_chart({"a <&>": [(1, 0.5), (2, 0.7), (3, 0.6)], "b": [(1, 0.1), (3, 0.2)]},
                                     "t <x>", "epoch", "y"))
    assert len(lines.findall(f".//{SVG}polyline")) == 2 and len(lines.findall(f".//{SVG}circle")) == 5
    assert lines.find(f"{SVG}title").text == "t <x>"
    bars = ET.fromstring(bar_chart(["1", "2–3"], [4, 0], "h", "rank", "n"))
    assert [r.find(f"{SVG}title").text for r in bars.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None] == \
        ["1: 4", "2–3: 0"]
    stats = {"count": 3, "mean": 0.2, "min": 0.1, "q1": 0.15, "median": 0.2, "q3": 0.25, "max": 0.3}
    boxes = ET.fromstring(box_chart(["x", "y"], {"available": [stats, stats], "missing": [stats, None]}, "m", "w"))
    assert len(boxes.findall(f"{SVG}g")) == 3


def test_summary_histogram_and_moe_split():
    data = run_inputs(seed=4)
    ranks = t2v_ranks(data["sims"], data["masks"]) + 1
    summary = summarise(ranks, data["masks"], EXPERTS, data["moe"], data["available"])
    edges = summary["rank_histogram"]["edges"]
    assert edges == [1, 2, 4, 8, 16] and edges == rank_bin_edges(10)
    counts = summary["rank_histogram"]["counts"]
    assert counts == [int(np.sum((ranks >= lo) & (ranks < hi))) for lo, hi in zip(edges, edges[1:])]
    assert sum(counts) == summary["num_queries"] == int(data["masks"].sum())
    rows = np.flatnonzero(data["masks"].reshape(-1))
    for m, name in enumerate(EXPERTS):
        has = data["available"][rows // data["masks"].shape[1], m]
        for group, chosen in (("available", has), ("missing", ~has)):
            stats = summary["moe"][name][group]
            if not chosen.any():
                assert stats is None
                continue
            values = data["moe"][rows[chosen], m]
            assert stats["count"] == chosen.sum()
            assert stats["median"] == pytest.approx(np.median(values)) and stats["max"] == pytest.approx(values.max())
    assert summary["moe"]["appearance"]["missing"] is None  # every video has appearance


def test_rank_bin_labels():
    assert rank_bin_labels([1, 2, 4, 8], 6) == ["1", "2–3", "4–6"]
    assert rank_bin_edges(8) == [1, 2, 4, 8, 16]
