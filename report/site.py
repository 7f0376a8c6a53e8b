"""The results site: an index of every run and one page per run, static files only.

Under ``<save_dir>/web/``:

* ``index.html``: every run found under ``<save_dir>/models/<experiment>/<run_id>/`` (one with a
  ``config.json``), newest first: start time, experiment, run id, config name, seed, best epoch,
  parameter count and headline test metrics, linked to the run's page;
* ``<experiment>/<run_id>/index.html``: the run's config summary, links to its ranking pages,
  plots (:mod:`report.run_plots`) and a table of every evaluation (validation per epoch from
  ``history.json``, test from ``metrics.json``).

Both are rewritten atomically by :func:`publish_run` when a run (or ``test.py``) ends, from
the files in the run folders alone, so they can be rebuilt at any time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from report.eval_summary import summary_path
from report.history import HISTORY_FILE, read_history
from report.html_page import document, esc, fmt, href
from report.published import experiments_section, published_rows
from report.results_table import DIRECTIONS, PUBLISHED_COLUMNS
from report.run_plots import run_plots
from report.v2t_page import v2t_path
from utils.atomic import write_text_atomic
from utils.metric_names import GMEAN_KEY

INDEX = "index.html"
RUN_ID_FORMAT = "%Y-%m-%d_%H-%M-%S"
SPLITS = ("test", "val")
HEADLINE = (("t2v_metrics", "R1", "t2v R@1"), ("t2v_metrics", "R5", "t2v R@5"), ("t2v_metrics", "R10", "t2v R@10"),
            ("t2v_metrics", "MedR", "t2v MdR"), ("t2v_metrics", GMEAN_KEY, "t2v Geom"),
            ("v2t_metrics", GMEAN_KEY, "v2t Geom"))
"""(direction, metric key, column label) of the site index's metric columns."""


@dataclass
class Run:
    """What one run folder holds: ``config.json``, ``metrics.json`` and ``history.json`` (empty,
    None and empty while not written)."""

    experiment: str
    run_id: str
    models: Path
    web: Path
    config: dict = field(default_factory=dict)
    metrics: dict | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def started(self) -> datetime:
        """The start time in the run id (``new_run_dirs`` names), else the models folder's time."""
        try:
            return datetime.strptime(self.run_id[:19], RUN_ID_FORMAT)
        except ValueError:
            return datetime.fromtimestamp(self.models.stat().st_mtime)

    @property
    def config_name(self) -> str:
        """The config's ``name`` when it has one, else the experiment (``<folder>-<config file>``)."""
        return str(self.config.get("name") or self.experiment)


def read_run(models: Path, web: Path) -> Run:
    """The run whose models folder is ``models`` (``.../<experiment>/<run_id>``) and pages go to ``web``."""
    models, web = Path(models), Path(web)
    config, metrics = (models / "config.json", models / "metrics.json")
    return Run(
        experiment=models.parent.name, run_id=models.name, models=models, web=web,
        config=json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {},
        metrics=json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else None,
        history=read_history(models / HISTORY_FILE),
    )


def find_runs(save_dir: Path) -> list[Run]:
    """Every run under ``<save_dir>/models``, newest first."""
    save_dir = Path(save_dir)
    runs = [read_run(config.parent, save_dir / "web" / config.parent.parent.name / config.parent.name)
            for config in (save_dir / "models").glob("*/*/config.json")]
    return sorted(runs, key=lambda run: (run.started, run.experiment, run.run_id), reverse=True)


def _args(section: dict | None) -> str:
    """``{"type": "AdamW", "args": {"lr": 0.001}}`` -> ``AdamW (lr=0.001)``."""
    if not section:
        return "none"
    args = ", ".join(f"{key}={json.dumps(value)}" for key, value in section.get("args", {}).items())
    return f"{section.get('type', '?')} ({args})" if args else str(section.get("type", "?"))


def config_summary(run: Run) -> list[str]:
    """The run's config as a definition list."""
    config = run.config
    experts = config.get("experts", {})
    epochs = config.get("trainer", {}).get("epochs", "?")
    trained = f", {len(run.history)} trained" if run.history else ""
    params = run.metrics.get("params") if run.metrics else None
    items = [("Model", _args(config.get("arch"))),
             ("Experts", ", ".join(experts.get("modalities", [])) or "none"),
             ("Text feature", experts.get("text_feat", "?")),
             ("Loss", _args(config.get("loss"))),
             ("Optimiser", _args(config.get("optimizer"))),
             ("LR schedule", _args(config.get("lr_scheduler"))),
             ("Epochs", f"{epochs}{trained}"),
             ("Seed", config.get("seed", 0)),
             ("Trainable parameters", "–" if params is None else f"{params:,d}")]
    lines = ["<dl class=\"config\">"]
    lines += [f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in items]
    return lines + ["</dl>"]


def evaluations_table(run: Run) -> list[str]:
    """One row per evaluation: the one in metrics.json (the test of the best model, named by its
    checkpoint file), then validation per epoch (the tested epoch highlighted); every t2v and v2t
    metric, in the published column order."""
    rows: list[tuple[str, int | None, dict]] = []
    best_epoch = run.metrics.get("epoch") if run.metrics else None
    if run.metrics:
        checkpoint = run.metrics.get("checkpoint")
        source = f" ({Path(checkpoint).name})" if checkpoint else ""
        rows.append((f"{run.metrics.get('split', 'test')}{source}", best_epoch, run.metrics))
        rows += [(label, None, numbers) for label, numbers in published_rows(run.metrics)]
    rows += [("val", entry["epoch"], entry["val"]) for entry in run.history if "val" in entry]
    if not rows:
        return ["<p class=\"note\">No evaluation recorded yet.</p>"]
    span = len(PUBLISHED_COLUMNS)
    labels = "".join(f"<th>{esc(label)}</th>" for _ in DIRECTIONS for _, label in PUBLISHED_COLUMNS)
    lines = ["<table class=\"evaluations\">", "<thead>",
             f"<tr><th rowspan=\"2\">Evaluation</th><th rowspan=\"2\">Epoch</th>"
             f"<th colspan=\"{span}\">Text → video</th><th colspan=\"{span}\">Video → text</th></tr>",
             f"<tr>{labels}</tr>", "</thead>", "<tbody>"]
    for name, epoch, metrics in rows:
        cells = "".join(f"<td class=\"num\">{fmt(metrics.get(direction, {}).get(key))}</td>"
                        for direction, _ in DIRECTIONS for key, _ in PUBLISHED_COLUMNS)
        row_class = " class=\"gt\"" if name == "val" and epoch == best_epoch else ""
        lines.append(f"<tr{row_class}><th>{esc(name)}</th><td class=\"num\">{'–' if epoch is None else epoch}</td>"
                     f"{cells}</tr>")
    return lines + ["</tbody>", "</table>"]


def page_links(run: Run) -> list[str]:
    """Links to the run's ranking pages that exist."""
    links = []
    for split in SPLITS:
        pages = [(page, label) for page, label in ((run.web / f"{split}.html", "text → video"),
                                                    (v2t_path(run.web / f"{split}.html"), "video → text"))
                 if page.is_file()]
        if pages:
            anchors = ", ".join(f"<a href=\"{href(page.name)}\">{label}</a>" for page, label in pages)
            links.append(f"<li>{esc(split)}: {anchors}</li>")
    if not links:
        return ["<p class=\"note\">No ranking pages yet.</p>"]
    return ["<ul class=\"pages\">", *links, "</ul>"]


def write_run_index(run: Run, site_index: Path | None = None) -> Path:
    """Write ``<run.web>/index.html``; links back to ``site_index`` when given. Returns its path."""
    test_summary = summary_path(run.web / "test.html")
    summary = json.loads(test_summary.read_text(encoding="utf-8")) if test_summary.is_file() else None
    title = f"{run.experiment} / {run.run_id}"
    body = [f"<h1>{esc(title)}</h1>"]
    if site_index is not None:
        body.append(f"<nav><a href=\"{href('../../' + site_index.name)}\">← All runs</a></nav>")
    body += ["<h3>Config</h3>", *config_summary(run), "<h3>Ranking pages</h3>", *page_links(run),
             "<h3>Plots</h3>", *run_plots(run.history, summary),
             "<h3>Evaluations</h3>", "<div class=\"wide\">", *evaluations_table(run), "</div>"]
    return write_text_atomic(run.web / INDEX, document(title, body))


def _metric_cell(run: Run, direction: str, key: str) -> str:
    value = run.metrics.get(direction, {}).get(key) if run.metrics else None
    return f"<td class=\"num\">{fmt(value)}</td>"


def write_site_index(save_dir: Path) -> Path:
    """Write ``<save_dir>/web/index.html`` listing every run, newest first. Returns its path."""
    web = Path(save_dir) / "web"
    runs = find_runs(save_dir)
    head = "".join(f"<th>{esc(label)}</th>" for _, _, label in HEADLINE)
    body = ["<h1>Runs</h1>",
            f"<p class=\"note\">{len(runs)} run(s) under {esc(Path(save_dir).resolve())}, newest first. "
            "Metrics: test split, best model.</p>",
            "<table class=\"runs\">",
            "<thead><tr><th>Started</th><th>Experiment</th><th>Run</th><th>Config name</th><th>Seed</th>"
            f"<th>Best epoch</th><th>Parameters</th>{head}</tr></thead>",
            "<tbody>"]
    for run in runs:
        page = run.web / INDEX
        target = f"{run.experiment}/{run.run_id}/{INDEX}"
        link = f"<a href=\"{href(target)}\">{esc(run.run_id)}</a>" if page.is_file() else esc(run.run_id)
        params = run.metrics.get("params") if run.metrics else None
        epoch = run.metrics.get("epoch") if run.metrics else None
        body.append(
            f"<tr><td>{run.started:%Y-%m-%d %H:%M}</td><td>{esc(run.experiment)}</td><td>{link}</td>"
            f"<td>{esc(run.config_name)}</td><td class=\"num\">{esc(run.config.get('seed', 0))}</td>"
            f"<td class=\"num\">{'–' if epoch is None else esc(epoch)}</td>"
            f"<td class=\"num\">{'–' if params is None else f'{params:,d}'}</td>"
            + "".join(_metric_cell(run, direction, key) for direction, key, _ in HEADLINE) + "</tr>")
    body += ["</tbody>", "</table>"]
    if not runs:
        body.append("<p class=\"note\">No runs yet.</p>")
    body += experiments_section([(run.experiment, run.config, run.metrics) for run in runs])
    return write_text_atomic(web / INDEX, document("Runs", body))


def publish_run(models: Path, web: Path) -> Path:
    """Rewrite the run's index page and, when the run lies in a ``<save_dir>/{models,web}/<experiment>/
    <run_id>`` layout, the site index. Returns the run's index page."""
    models, web = Path(models).resolve(), Path(web).resolve()
    save_dir = models.parents[2] if len(models.parents) > 2 else None
    in_layout = (save_dir is not None and models.parents[1].name == "models"
                 and web == save_dir / "web" / models.parent.name / models.name)
    page = write_run_index(read_run(models, web), save_dir / "web" / INDEX if in_layout else None)
    if in_layout:
        write_site_index(save_dir)
    return page
