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
from functools import cached_property
from pathlib import Path

from logger.logger import get_logger
from report.eval_summary import summary_path
from report.history import HISTORY_FILE
from report.html_page import document, esc, fmt, href
from report.published import experiments_section, published_rows
from report.results_table import DIRECTIONS, PUBLISHED_COLUMNS
from report.run_files import clean_history, clean_metrics, read_json_file
from report.run_folder import model_folders, site_index_folder, web_folder
from report.run_plots import run_plots
from report.v2t_page import V2T_SUFFIX, v2t_path
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
    None and empty while not written, cleaned by :func:`read_run`), ``problems``: a line for
    each of them that could not be read, and ``evaluations``: the other evaluations of test.py
    (``metrics-<split or change>.json`` -> its cleaned metrics; unreadable ones are left out)."""

    experiment: str
    run_id: str
    models: Path
    web: Path
    config: dict = field(default_factory=dict)
    metrics: dict | None = None
    history: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    evaluations: dict[str, dict] = field(default_factory=dict)

    @cached_property
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
    """The run whose models folder is ``models`` (``.../<experiment>/<run_id>``) and pages go to ``web``.

    A file that is not there yet is empty; one that cannot be read, or is not the JSON object
    (list for the history) it should be, is listed in the run's ``problems``.
    """
    models, web = Path(models), Path(web)
    problems: list[str] = []

    def part(name: str, kind: type) -> object:
        """The JSON value of ``name`` when it exists (else None); a problem when it is unreadable
        or not of ``kind``."""
        if not (models / name).exists():
            return None
        value, problem = read_json_file(models / name)
        if problem is None and not isinstance(value, kind):
            problem = f"{name} is not a JSON {'object' if kind is dict else 'list'}"
        problems.extend([problem] if problem else [])
        return value if problem is None else None

    config = part("config.json", dict)
    metrics = part("metrics.json", dict)
    history = part(HISTORY_FILE, list)
    config, metrics, history = config or {}, clean_metrics(metrics), clean_history(history)
    evaluations = {}
    for path in sorted(models.glob("metrics-*.json")):
        value, problem = read_json_file(path)
        if problem is None and clean_metrics(value) is not None:
            evaluations[path.name] = clean_metrics(value)
    return Run(experiment=models.parent.name, run_id=models.name, models=models, web=web,
               config=config, metrics=metrics, history=history, problems=problems, evaluations=evaluations)


def find_runs(save_dir: Path) -> list[Run]:
    """Every run under ``<save_dir>/models``, newest first; a run folder that vanishes while it
    is read is left out."""
    save_dir = Path(save_dir)
    runs = []
    for models in model_folders(save_dir):
        try:
            run = read_run(models, web_folder(save_dir, models))
            run.started  # noqa: B018  (cached: the folder's time when the run id is not a start time)
        except FileNotFoundError:
            continue
        runs.append(run)
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
             ("Trainable parameters", "–" if not isinstance(params, int) else f"{params:,d}")]
    lines = ["<dl class=\"config\">"]
    lines += [f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in items]
    return lines + ["</dl>"]


def evaluations_table(run: Run) -> list[str]:
    """One row per evaluation: the one in metrics.json (the test of the best model, named by its
    checkpoint file), then validation per epoch (the tested epoch highlighted); every t2v and v2t
    metric, in the published column order."""
    rows: list[tuple[str, int | None, dict]] = []
    best_epoch = run.metrics.get("epoch") if run.metrics else None
    for name, metrics in [("metrics.json", run.metrics), *run.evaluations.items()]:
        if metrics:
            checkpoint = metrics.get("checkpoint")
            source = f" ({Path(checkpoint).name})" if checkpoint else ""
            label = "" if name == "metrics.json" else f" [{name}]"
            rows.append((f"{metrics.get('split', 'test')}{source}{label}", metrics.get("epoch"), metrics))
            if name == "metrics.json":
                rows += [(label, None, numbers) for label, numbers in published_rows(metrics)]
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


def ranking_pages(web: Path) -> list[Path]:
    """The text-to-video ranking pages in a run's web folder: ``test.html`` and ``val.html`` first,
    then every other evaluation's (``test-bf16.html``, ``val-<checkpoint>.html``, ...) by name."""
    try:
        pages = [page for page in Path(web).glob("*.html")
                 if page.name != INDEX and not page.stem.endswith(V2T_SUFFIX)]
    except OSError:
        return []
    first = {f"{split}.html": i for i, split in enumerate(SPLITS)}
    return sorted(pages, key=lambda page: (first.get(page.name, len(first)), page.name))


def page_links(run: Run) -> list[str]:
    """Links to every ranking page of the run (both directions where both exist)."""
    links = []
    for page in ranking_pages(run.web):
        pages = [(p, label) for p, label in ((page, "text → video"), (v2t_path(page), "video → text")) if p.is_file()]
        anchors = ", ".join(f"<a href=\"{href(p.name)}\">{label}</a>" for p, label in pages)
        links.append(f"<li>{esc(page.stem)}: {anchors}</li>")
    if not links:
        return ["<p class=\"note\">No ranking pages yet.</p>"]
    return ["<ul class=\"pages\">", *links, "</ul>"]


def write_run_index(run: Run, site_index: Path | None = None) -> Path:
    """Write ``<run.web>/index.html``; links back to ``site_index`` when given. Returns its path."""
    summary, _ = read_json_file(summary_path(run.web / "test.html"))
    title = f"{run.experiment} / {run.run_id}"
    body = [f"<h1>{esc(title)}</h1>"]
    if site_index is not None:
        body.append(f"<nav><a href=\"{href('../../' + site_index.name)}\">← All runs</a></nav>")
    if run.problems or (run.metrics or {}).get("not_scored"):
        notes = [*run.problems, *([run.metrics["not_scored"]] if (run.metrics or {}).get("not_scored") else [])]
        body += [f"<p class=\"note\">{esc(note)}</p>" for note in notes]
    body += ["<h3>Config</h3>", *config_summary(run), "<h3>Ranking pages</h3>", *page_links(run),
             "<h3>Plots</h3>", *run_plots(run.history, summary if isinstance(summary, dict) else None),
             "<h3>Evaluations</h3>", "<div class=\"wide\">", *evaluations_table(run), "</div>"]
    return write_text_atomic(run.web / INDEX, document(title, body))


def _metric_cell(run: Run, direction: str, key: str) -> str:
    value = run.metrics.get(direction, {}).get(key) if run.metrics else None
    return f"<td class=\"num\">{fmt(value)}</td>"


def run_status(run: Run) -> str:
    """What state a run's files show: ``finished``, ``not scored`` (its weights were not finite),
    ``no checkpoint`` (stopped, or still in its first epoch, before writing any checkpoint) or
    ``unfinished (epoch N)`` (training, or stopped after its epoch-N checkpoint: resume from it)."""
    if run.metrics is not None:
        return "not scored" if run.metrics.get("not_scored") else "finished"
    try:
        epochs = [int(p.stem.removeprefix("checkpoint-epoch")) for p in run.models.glob("checkpoint-epoch*.pth")
                  if p.stem.removeprefix("checkpoint-epoch").isdigit()]
    except OSError:
        epochs = []
    return f"unfinished (epoch {max(epochs)})" if epochs else "no checkpoint"


def skipped_runs(runs: list[Run]) -> list[str]:
    """A list of the runs left out of the index because a file of theirs cannot be read."""
    if not runs:
        return []
    items = [f"<li>{esc(run.experiment)}/{esc(run.run_id)}: {esc('; '.join(run.problems))}</li>" for run in runs]
    return [f"<h3>Skipped runs ({len(runs)})</h3>",
            "<p class=\"note\">These runs have files that cannot be read; they are left out above.</p>",
            "<ul class=\"skipped\">", *items, "</ul>"]


def write_site_index(save_dir: Path) -> Path:
    """Write ``<save_dir>/web/index.html`` listing every run, newest first, and after them the runs
    whose files cannot be read. Returns its path."""
    web = site_index_folder(save_dir)
    found = find_runs(save_dir)
    runs = [run for run in found if not run.problems]
    head = "".join(f"<th>{esc(label)}</th>" for _, _, label in HEADLINE)
    body = ["<h1>Runs</h1>",
            f"<p class=\"note\">{len(runs)} run(s) under {esc(Path(save_dir).resolve())}, newest first. "
            "Metrics: test split, best model.</p>",
            "<table class=\"runs\">",
            "<thead><tr><th>Started</th><th>Experiment</th><th>Run</th><th>Status</th><th>Config name</th><th>Seed</th>"
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
            f"<td>{esc(run_status(run))}</td>"
            f"<td>{esc(run.config_name)}</td><td class=\"num\">{esc(run.config.get('seed', 0))}</td>"
            f"<td class=\"num\">{'–' if epoch is None else esc(epoch)}</td>"
            f"<td class=\"num\">{'–' if not isinstance(params, int) else f'{params:,d}'}</td>"
            + "".join(_metric_cell(run, direction, key) for direction, key, _ in HEADLINE) + "</tr>")
    body += ["</tbody>", "</table>"]
    if not runs:
        body.append("<p class=\"note\">No runs yet.</p>")
    body += experiments_section([(run.experiment, run.config, run.metrics) for run in runs])
    body += skipped_runs([run for run in found if run.problems])
    return write_text_atomic(web / INDEX, document("Runs", body))


def publish_run_safely(models: Path, web: Path) -> Path | None:
    """:func:`publish_run` for the end of a run or an evaluation, whose results are written by
    now: a failure to render is one warning line, never an error. Returns the run page or None."""
    try:
        return publish_run(models, web)
    except Exception as exc:  # rendering must not fail a run whose results are written
        get_logger().warning(f"warning: the results pages of {models} were not updated "
                             f"({type(exc).__name__}: {exc})")
        return None


def publish_run(models: Path, web: Path) -> Path:
    """Rewrite the run's index page and, when the run lies in a ``<save_dir>/{models,web}/<experiment>/
    <run_id>`` layout, the site index. Returns the run's index page."""
    models, web = Path(models).resolve(), Path(web).resolve()
    save_dir = models.parents[2] if len(models.parents) > 2 else None
    in_layout = (save_dir is not None and models.parents[1].name == "models"
                 and web == web_folder(save_dir, models))
    page = write_run_index(read_run(models, web), site_index_folder(save_dir) / INDEX if in_layout else None)
    if in_layout:
        write_site_index(save_dir)
    return page
