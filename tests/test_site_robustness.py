"""One run's bad or half-written file is that run's problem: the site index, run pages and plots
(report/site.py, report/plots.py) skip and list it, and rendering never fails a finished run."""
from __future__ import annotations

import json
import logging
import math
import re

import pytest
from site_fixture import write_run

from report import site as site_module
from report.plots import line_chart, nice_ticks
from report.site import find_runs, publish_run, publish_run_safely, read_run, run_status, write_site_index

DAMAGE = {
    "truncated metrics": ("metrics.json", lambda text: text[:100]),
    "empty metrics": ("metrics.json", lambda text: ""),
    "metric a string": ("metrics.json", lambda text: text.replace('"R1": ', '"R1": "<script>", "x": ', 1)),
    "params a string": ("metrics.json", lambda text: text.replace('"params": ', '"params": "many", "p": ', 1)),
    "truncated config": ("config.json", lambda text: text[:50]),
    "config a list": ("config.json", lambda text: "[1]"),
    "truncated history": ("history.json", lambda text: text[:80]),
    "history entry without epoch": ("history.json", lambda text: '[{"loss": 1.0}, {"epoch": "x"}]'),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_unreadable_neighbour_run_is_skipped_and_listed(tmp_path, case):
    name, damage = DAMAGE[case]
    neighbour, _ = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    path = neighbour / name
    path.write_text(damage(path.read_text()))
    own, web = write_run(tmp_path, "exp", "2024-01-02_00-00-00", 1)  # publishes: must not raise
    index = (tmp_path / "web" / "index.html").read_text()
    assert f"exp/{own.name}/index.html" in index
    damaged = read_run(neighbour, tmp_path / "web" / "exp" / neighbour.name)
    if damaged.problems:  # unreadable: listed under the skipped runs with the file named
        assert "Skipped runs (1)" in index and name in index.split("Skipped runs")[1]
    else:  # readable JSON with wrong values: listed, the wrong values shown as absent
        assert f"exp/{neighbour.name}/index.html" in index and "&lt;script&gt;" not in index
    assert (web / "index.html").is_file()


def test_non_utf8_config_is_a_listed_problem(tmp_path):
    models, _ = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    (models / "config.json").write_bytes(b"\xff\xfe{")
    assert read_run(models, tmp_path).problems == ["config.json is unreadable (UnicodeDecodeError)"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, 1e308, "high"])
def test_non_finite_history_values_draw_gaps(tmp_path, bad):
    models, web = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    history = json.loads((models / "history.json").read_text())
    history[1]["loss"] = bad
    history[2]["lr"] = bad
    history[2]["val"]["t2v_metrics"]["R1"] = bad
    (models / "history.json").write_text(json.dumps(history))
    page = publish_run(models, web).read_text()
    loss_chart = page.split('aria-label="Training loss"')[1].split("</svg>")[0]
    if bad == 1e308:  # a finite value is drawn, however large
        assert loss_chart.count("<polyline") == 3
    else:  # total, t2v and v2t: the total's line is broken in two at epoch 2, its mark there dropped
        assert loss_chart.count("<polyline") == 4
        assert len(re.findall(r"<circle[^>]*><title>total:", loss_chart)) == 3


def test_line_chart_of_gaps_only_still_draws_axes():
    svg = line_chart({"loss": [(1, math.nan), (2, None)]}, "t", "x", "y")
    assert "<polyline" not in svg and svg.count("<svg") == 1


def test_ticks_cover_the_largest_floats():
    ticks = nice_ticks(-1e308, 1e308)
    assert ticks[0] <= -1e308 and ticks[-1] >= 1e308 and all(math.isfinite(t) for t in ticks)


def test_rendering_failure_after_results_is_one_warning(tmp_path, monkeypatch, caplog):
    models, web = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)

    def broken(save_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(site_module, "write_site_index", broken)
    logger = logging.getLogger("ce")
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="ce"):
        assert publish_run_safely(models, web) is None
    assert len(caplog.records) == 1 and "No space left on device" in caplog.records[0].getMessage()


def test_run_folder_vanishing_while_the_index_is_built_is_skipped(tmp_path, monkeypatch):
    write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    write_run(tmp_path, "exp", "2024-01-02_00-00-00", 1)
    real = site_module.read_run

    def vanishing(models, web):
        if models.name.startswith("2024-01-01"):
            raise FileNotFoundError(models / "config.json")
        return real(models, web)

    monkeypatch.setattr(site_module, "read_run", vanishing)
    assert [run.run_id for run in find_runs(tmp_path)] == ["2024-01-02_00-00-00"]
    assert write_site_index(tmp_path).is_file()


def test_run_status_marks_runs_without_checkpoint(tmp_path):
    models, web = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    assert run_status(read_run(models, web)) == "finished"
    (models / "metrics.json").unlink()
    assert run_status(read_run(models, web)) == "no checkpoint"
    (models / "checkpoint-epoch2.pth").write_bytes(b"")
    assert run_status(read_run(models, web)) == "unfinished (epoch 2)"
    (models / "metrics.json").write_text(json.dumps({"not_scored": "weights not finite"}))
    assert run_status(read_run(models, web)) == "not scored"
    publish_run(models, web)
    assert "not scored" in (tmp_path / "web" / "index.html").read_text()
    assert "weights not finite" in (web / "index.html").read_text()


def test_run_page_links_every_evaluation(tmp_path):
    models, web = write_run(tmp_path, "exp", "2024-01-01_00-00-00", 0)
    for page in ("val-trained_model.html", "test-bf16.html", "test-bf16-v2t.html"):
        (web / page).write_text("<html></html>")
    metrics = json.loads((models / "metrics.json").read_text())
    (models / "metrics-bf16.json").write_text(json.dumps({**metrics, "t2v_metrics": {"R1": 77.5}}))
    text = publish_run(models, web).read_text()
    for page in ("test.html", "val-trained_model.html", "test-bf16.html", "test-bf16-v2t.html"):
        assert f'href="{page}"' in text
    assert "[metrics-bf16.json]" in text and "77.50" in text
