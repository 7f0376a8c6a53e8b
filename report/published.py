"""The published models of the original papers (``misc/published/models.json``) and their numbers
beside this project's.

The registry holds one entry per published experiment (CE/MoEE/QuerYD: 157, TeachText: 25) with
where its files live (``url_root`` kind, experiment, group id, seed folder, timestamp), the paper's
mean and std over three seeds per metric (``t2v``; ``v2t`` null where the source gives t2v only,
``only_t2v`` true) and the published parameter count. RANP's released checkpoints are listed
apart (``ranp``): they need a model this project does not have yet.

Files of a published model live in the original's layout, under a save folder (``data``):
``<save>/models/<experiment>/<group_id>/<seed_dir>/<timestamp>/{config.json,trained_model.pth}``
and ``<save>/log/<experiment>/<group_id>/<seed_dir>/<timestamp>/<summary_log>``;
``misc/sync_models.py`` writes ``published.json`` beside the checkpoint (the entry it fetched and
each file's sha256), which :func:`published_numbers` reads back for ``test.py``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from report.html_page import esc
from report.results_table import DIRECTIONS, PUBLISHED_COLUMNS, RunResult, flatten, seed_table
from utils.errors import UserError
from utils.metric_names import GMEAN_KEY
from utils.original.summary_log import read_summary_log

REGISTRY = Path(__file__).resolve().parents[1] / "misc" / "published" / "models.json"
RECORD = "published.json"
URL_KINDS = ("ce", "teachtext")
METRIC_KEYS = {"R1": "R1", "R5": "R5", "R10": "R10", "R50": "R50", "MedR": "MedR", "MeanR": "MeanR",
               "geom": GMEAN_KEY}
"""Registry metric name -> this project's metric key."""
REQUIRED = {"name": str, "experiment": str, "dataset": str, "split": str, "group_id": str, "seed_dir": str,
            "timestamp": str, "summary_log": str, "url_root": str, "only_t2v": bool, "notes": list}
SEED_DIR = re.compile(r"seed-\d+")


class RegistryError(UserError):
    """A malformed registry entry or an unknown model name, in one line."""


@dataclass
class PublishedModel:
    """One registry entry (see the module docstring); ``t2v``/``v2t``: metric -> [mean, std] or None."""

    name: str
    experiment: str
    dataset: str
    split: str
    group_id: str
    seed_dir: str
    timestamp: str
    summary_log: str
    url_root: str
    t2v: dict[str, list[float]] | None
    v2t: dict[str, list[float]] | None
    only_t2v: bool
    params: int | None
    config: str | None
    notes: list[str]

    @property
    def subdir(self) -> str:
        """``<experiment>/<group_id>/<seed_dir>/<timestamp>``, the same on the server and on disk."""
        return f"{self.experiment}/{self.group_id}/{self.seed_dir}/{self.timestamp}"

    def files(self) -> dict[str, str]:
        """Relative path (under the server root and the local save folder) -> file name."""
        return {f"models/{self.subdir}/config.json": "config.json",
                f"models/{self.subdir}/trained_model.pth": "trained_model.pth",
                f"log/{self.subdir}/{self.summary_log}": self.summary_log}

    def paper(self) -> dict[str, dict[str, list[float]] | None]:
        """``{"t2v_metrics": {metric key: [mean, std]}, "v2t_metrics": ... or None}``."""
        return {f"{short}_metrics": None if numbers is None else {METRIC_KEYS[k]: v for k, v in numbers.items()}
                for short, numbers in (("t2v", self.t2v), ("v2t", self.v2t))}


def _check_numbers(where: str, numbers: object) -> None:
    if numbers is None:
        return
    if not isinstance(numbers, dict) or not numbers:
        raise RegistryError(f"{where}: expected an object metric -> [mean, std], or null")
    for key, pair in numbers.items():
        if key not in METRIC_KEYS:
            raise RegistryError(f"{where}.{key}: unknown metric; expected one of {', '.join(METRIC_KEYS)}")
        if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair)
                or pair[1] < 0 or pair[0] < 0):
            raise RegistryError(f"{where}.{key}: expected [mean, std] with non-negative numbers, got {pair!r}")


def check_entry(entry: object, where: str) -> PublishedModel:
    """The entry ``entry`` (found at ``where``) as a PublishedModel; RegistryError naming the key
    that is missing or malformed."""
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected an object")
    for key, kind in REQUIRED.items():
        if not isinstance(entry.get(key), kind):
            raise RegistryError(f"{where}.{key}: expected a {kind.__name__}, got {entry.get(key)!r}")
    if entry["url_root"] not in URL_KINDS:
        raise RegistryError(f"{where}.url_root: expected one of {', '.join(URL_KINDS)}, got {entry['url_root']!r}")
    if not SEED_DIR.fullmatch(entry["seed_dir"]):
        raise RegistryError(f"{where}.seed_dir: expected seed-<n>, got {entry['seed_dir']!r}")
    for key in ("t2v", "v2t"):
        _check_numbers(f"{where}.{key}", entry.get(key))
    if entry["only_t2v"] != (entry.get("v2t") is None):
        raise RegistryError(f"{where}.only_t2v: must be true exactly when v2t is null")
    params = entry.get("params")
    if params is not None and (not isinstance(params, int) or params < 1):
        raise RegistryError(f"{where}.params: expected a positive integer or null, got {params!r}")
    if entry.get("config") is not None and not isinstance(entry["config"], str):
        raise RegistryError(f"{where}.config: expected a path or null")
    fields = set(PublishedModel.__dataclass_fields__)
    return PublishedModel(**{key: entry.get(key) for key in fields})


def load_registry(path: Path | None = None) -> dict[str, PublishedModel]:
    """Name -> entry of the registry at ``path`` (default: the shipped one), every entry checked."""
    path = Path(path) if path is not None else REGISTRY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the registry ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise RegistryError(f"{path}: expected an object with a 'models' list")
    models: dict[str, PublishedModel] = {}
    for index, entry in enumerate(data["models"]):
        model = check_entry(entry, f"{path}: models[{index}]")
        if model.name in models:
            raise RegistryError(f"{path}: models[{index}].name: {model.name!r} appears twice")
        models[model.name] = model
    return models


def url_roots(path: Path | None = None) -> dict[str, str]:
    """The registry's default server roots, kind (``ce``, ``teachtext``) -> URL."""
    return json.loads((Path(path) if path is not None else REGISTRY).read_text(encoding="utf-8"))["url_roots"]


def for_experiment(models: dict[str, PublishedModel], experiment: str) -> PublishedModel | None:
    """The entry to compare runs of ``experiment`` with: the one named so, else the only one whose
    experiment it is (a TeachText retrain of a CE experiment is named ``<experiment>-hq``)."""
    if experiment in models:
        return models[experiment]
    matches = [model for model in models.values() if model.experiment == experiment]
    return matches[0] if len(matches) == 1 else None


def published_layout(checkpoint: Path) -> tuple[Path, str] | None:
    """(save folder, ``<experiment>/<group>/<seed_dir>/<timestamp>``) when ``checkpoint`` lies in
    the original's published layout ``<save>/models/<experiment>/<group>/seed-<n>/<timestamp>/``."""
    folder = Path(checkpoint).resolve().parent
    parents = folder.parents
    if len(parents) >= 5 and parents[3].name == "models" and SEED_DIR.fullmatch(folder.parent.name):
        return parents[4], "/".join((parents[2].name, parents[1].name, folder.parent.name, folder.name))
    return None


def downloaded_config(checkpoint: Path) -> Path | None:
    """The ``config.json`` beside a checkpoint in the published layout (the faithful config of a
    published model: the repository's configs have drifted since), else None."""
    config = Path(checkpoint).parent / "config.json"
    return config if published_layout(checkpoint) is not None and config.is_file() else None


def _entry_of(checkpoint: Path, subdir: str) -> PublishedModel | None:
    """The entry recorded by ``sync_models.py`` beside ``checkpoint``, else the shipped registry's
    entry with that layout."""
    record = Path(checkpoint).parent / RECORD
    if record.is_file():
        try:
            return check_entry(json.loads(record.read_text(encoding="utf-8"))["entry"], f"{record}: entry")
        except (json.JSONDecodeError, KeyError, TypeError):
            raise RegistryError(f"{record}: unreadable; delete it and fetch the model again") from None
    return next((model for model in load_registry().values() if model.subdir == subdir), None)


def published_numbers(checkpoint: Path) -> dict | None:
    """For a checkpoint in the published layout: ``{"model", "seed", "seed_metrics", "paper",
    "summary_log"}`` (the seed's own numbers from the downloaded summary log, the exact target of
    this checkpoint, and the paper's three-seed mean and std, each None when unknown); None for
    any other checkpoint, or one with neither a registry entry nor a summary log."""
    layout = published_layout(checkpoint)
    if layout is None:
        return None
    save, subdir = layout
    entry = _entry_of(checkpoint, subdir)
    folder = save / "log" / subdir
    logs = [folder / entry.summary_log] if entry is not None else sorted(folder.glob("summary-*.json"))
    logs = [log for log in logs if log.is_file()]
    if entry is None and not logs:
        return None
    result: dict = {"model": entry.name if entry else None, "seed": None, "seed_metrics": None,
                    "paper": entry.paper() if entry else None, "summary_log": None}
    if logs:
        log = read_summary_log(logs[0])
        result.update(seed=log.seeds[0], seed_metrics=log.first_seed, summary_log=str(logs[0]))
    return result


def largest_difference(measured: dict, seed_metrics: dict) -> tuple[float, str] | None:
    """(|measured - logged|, "t2v R1") of the metric that differs most between an evaluation's
    metrics and a seed's logged ones (both direction -> key -> value); None when none is shared."""
    pairs = [(abs(measured[d][k] - v), f"{d.split('_')[0]} {k}") for d, values in seed_metrics.items()
             for k, v in values.items() if isinstance(measured.get(d, {}).get(k), (int, float))]
    return max(pairs) if pairs else None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def format_published(published: dict, measured: dict) -> str:
    """Lines to print under test.py's table (``measured``: its metrics, direction -> key -> value):
    this checkpoint's seed as published (its summary log), the paper's mean (std) over three
    seeds, which is which, and how far the evaluation is from the seed's logged numbers."""
    keys = [key for key, _ in PUBLISHED_COLUMNS]
    head = f"{'':5s}" + "".join(f"{label:>11s}" for _, label in PUBLISHED_COLUMNS)
    lines = [f"published ({published['model'] or 'not in the registry'}):", head]
    for direction, short in DIRECTIONS:
        seed = (published.get("seed_metrics") or {}).get(direction)
        paper = (published.get("paper") or {}).get(direction)
        if seed:
            lines.append(f"{short:5s}" + "".join(f"{_fmt(seed.get(k)):>11s}" for k in keys)
                         + f"   seed {published['seed']} (log)")
        if paper:
            cells = [f"{paper[k][0]:.1f}({paper[k][1]:.1f})" if k in paper else "–" for k in keys]
            lines.append(f"{short:5s}" + "".join(f"{c:>11s}" for c in cells) + "   paper")
    lines.append("log: the numbers the original code reported for this very checkpoint (its seed), which "
                 "the table above should reproduce; paper: mean (std) over three seeds, of which this is one")
    gap = largest_difference(measured, published["seed_metrics"]) if published.get("seed_metrics") else None
    if gap is not None:
        verdict = "reproduces" if gap[0] < 0.005 else "differs from"
        lines.append(f"this evaluation {verdict} the log of seed {published['seed']}: largest difference "
                     f"{gap[0]:.4f} ({gap[1]})")
    return "\n".join(lines)


def published_rows(metrics: dict | None) -> list[tuple[str, dict]]:
    """Rows for a run page's evaluations table from a metrics.json ``published`` record:
    (label, {direction: {key: value}})."""
    published = (metrics or {}).get("published")
    if not isinstance(published, dict):
        return []
    rows = []
    if isinstance(published.get("seed_metrics"), dict):
        rows.append((f"published: seed {published.get('seed', '?')} (log)", published["seed_metrics"]))
    if isinstance(published.get("paper"), dict):
        paper = {d: {k: pair[0] for k, pair in v.items() if isinstance(pair, list) and pair}
                 for d, v in published["paper"].items() if isinstance(v, dict)}
        rows.append(("published: paper mean of 3 seeds", paper))
    return rows


def _difference(ours: str, paper: list[float] | None) -> str:
    mean = re.match(r"\s*(-?\d+(?:\.\d+)?)", ours)  # "12.3(0.4)", "12.3(0.4) [1 missing]", "– [2 missing]"
    if paper is None or mean is None:
        return "–"
    return f"{float(mean.group(1)) - paper[0]:+.1f}"


def comparison_table(runs: list[RunResult], models: dict[str, PublishedModel] | None = None) -> pd.DataFrame:
    """The seed table of ``runs`` (report.results_table.seed_table) with, under each experiment
    the registry knows, a ``published`` row (the paper's mean(std)) and a ``difference`` row
    (ours minus published, means)."""
    models = load_registry() if models is None else models
    table = seed_table(runs)
    experiments = {label: run.experiment for run in runs for label in table["Config"] if label.split(" [")[0]
                   == run.experiment}
    rows = []
    for row in table.to_dict("records"):
        rows.append(row)
        model = for_experiment(models, experiments.get(row["Config"], row["Config"]))
        if model is None:
            continue
        paper = model.paper()
        published = {"Config": f"published: {model.name}", "Seeds": "paper", "Params":
                     "–" if model.params is None else f"{model.params / 1e6:.2f}M"}
        difference = {"Config": "difference (ours − published)", "Seeds": "", "Params": ""}
        for column in table.columns[2:-1]:
            short, _, label = column.partition(" ")
            key = next((k for k, lab in PUBLISHED_COLUMNS if lab == label), None)
            pair = (paper.get(f"{short}_metrics") or {}).get(key) if key else None
            published[column] = "–" if pair is None else f"{pair[0]:.1f}({pair[1]:.1f})"
            difference[column] = _difference(row[column], pair)
        rows += [published, difference]
    return pd.DataFrame(rows, columns=table.columns)


DOCS_BEGIN = "<!-- BEGIN published-models table: generated by python3 misc/sync_models.py --write_docs -->"
DOCS_END = "<!-- END published-models table -->"


def docs_table(models: dict[str, PublishedModel]) -> str:
    """The published-models table of docs/published-models.md (markdown, between the markers):
    one row per registry entry with its t2v mean (std), params, notes and fetch-and-evaluate command."""
    def cell(model: PublishedModel, key: str) -> str:
        pair = (model.t2v or {}).get(key)
        return "–" if pair is None else f"{pair[0]:.1f} ({pair[1]:.1f})"

    lines = [DOCS_BEGIN, "",
             "| name | dataset | server | t2v R@1 | R@5 | R@10 | MdR | Geom | params | notes | fetch and evaluate |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for model in models.values():
        params = "–" if model.params is None else f"{model.params:,d}"
        notes = "; ".join(model.notes).replace("|", "\\|") or ""
        command = (f"`python3 misc/sync_models.py --experiment {model.name}` then "
                   f"`python3 test.py --resume data/models/{model.subdir}/trained_model.pth`")
        lines.append(f"| {model.name} | {model.dataset} | {model.url_root} | "
                     + " | ".join(cell(model, key) for key in ("R1", "R5", "R10", "MedR", "geom"))
                     + f" | {params} | {notes} | {command} |")
    return "\n".join([*lines, "", DOCS_END])


def with_docs_table(text: str, models: dict[str, PublishedModel]) -> str:
    """``text`` (a docs page) with the part between the table markers replaced by :func:`docs_table`."""
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise RegistryError(f"the page has no '{DOCS_BEGIN}' ... '{DOCS_END}' markers")
    head, rest = text.split(DOCS_BEGIN, 1)
    return head + docs_table(models) + rest.split(DOCS_END, 1)[1]


def experiments_section(runs: list[tuple[str, dict, dict]]) -> list[str]:
    """HTML lines for the site index: per experiment, the mean (std) over its tested runs
    (``(experiment, config, metrics)``), with the published row and the difference where the
    registry has the experiment; nothing when no run was tested."""
    results = [RunResult(experiment, int(config.get("seed", 0)), flatten(config), metrics.get("params"), metrics)
               for experiment, config, metrics in runs if metrics]
    if not results:
        return []
    try:
        models = load_registry()
    except UserError:  # the site is still written without the published rows
        models = {}
    table = comparison_table(results, models)
    head = "".join(f"<th>{esc(column)}</th>" for column in table.columns)
    lines = ["<h2>Experiments</h2>",
             "<p class=\"note\">Test metrics as mean (std) over each experiment's runs (seeds), with the "
             "published mean (std) and the difference where the experiment is a published one.</p>",
             "<div class=\"wide\"><table class=\"experiments\">", f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in table.itertuples(index=False):
        cells = "".join(f"<td>{esc(value)}</td>" if i < 2 else f"<td class=\"num\">{esc(value)}</td>"
                        for i, value in enumerate(row))
        lines.append(f"<tr>{cells}</tr>")
    return lines + ["</tbody>", "</table></div>"]
