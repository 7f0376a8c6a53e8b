"""Test metrics over seeds, laid out as the published tables of these methods.

One row per config: for each direction ``R@1 | R@5 | R@10 | R@50 | MdR | MnR | Geom`` as
``mean(std)`` over the config's runs (one decimal; the sample standard deviation, ddof 1, as
the original project's log summary; the mean alone for a single run), the seeds and the
trainable parameter count. Runs are read from their models folders (``metrics.json``,
``config.json``). Runs of one experiment whose configs differ in more than the seed (e.g.
``--set trainer.epochs=3``) are separate rows, labelled with the keys that differ.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from report.run_files import clean_metrics, read_json_file
from utils.atomic import write_text_atomic
from utils.errors import UserError
from utils.metric_names import GMEAN_KEY

PUBLISHED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R1", "R@1"), ("R5", "R@5"), ("R10", "R@10"), ("R50", "R@50"),
    ("MedR", "MdR"), ("MeanR", "MnR"), (GMEAN_KEY, "Geom"),
)
"""(metric key, published column label), in the published order."""
DIRECTIONS: tuple[tuple[str, str], ...] = (("t2v_metrics", "t2v"), ("v2t_metrics", "v2t"))
RELEVANCE_COLUMNS: tuple[tuple[str, str], ...] = (("nDCG_avg", "nDCG"), ("mAP_avg", "mAP"))
"""(relevance_metrics key, column label), shown in percent when some run has them."""
IGNORED_KEYS = ("seed", "trainer.save_dir", "trainer.tensorboard", "trainer.verbosity", "trainer.log_every")
"""Config keys that do not make runs different configs."""


@dataclass
class RunResult:
    """One finished run: its experiment, seed, flattened config, parameter count and test metrics."""

    experiment: str
    seed: int
    config: dict[str, object]
    params: int | None
    metrics: dict
    run_id: str = ""


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars are leaves)."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_run_result(models: Path) -> RunResult:
    """The run whose models folder (``.../<experiment>/<run_id>``) is ``models``; a UserError
    naming the file when its ``metrics.json`` or ``config.json`` cannot be read or its seed is
    not an integer. Metrics that are not numbers (null for NaN, text) are read as None."""
    models = Path(models)
    value, problem = read_json_file(models / "metrics.json")
    metrics = clean_metrics(value)
    if problem or metrics is None:
        raise UserError(f"{models / 'metrics.json'}: {problem or 'not a JSON object'}")
    config: object = {}
    if (models / "config.json").exists():
        config, problem = read_json_file(models / "config.json")
        if problem or not isinstance(config, dict):
            raise UserError(f"{models / 'config.json'}: {problem or 'not a JSON object'}")
    seed = config.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{models / 'config.json'}: seed is {json.dumps(seed)}, expected an integer")
    return RunResult(models.parent.name, seed, flatten(config), metrics.get("params"), metrics, models.name)


def read_run_results(folders: list[Path]) -> tuple[list[RunResult], list[str]]:
    """The readable runs of ``folders`` and a line for each one skipped (see :func:`read_run_result`)."""
    runs, skipped = [], []
    for folder in folders:
        try:
            runs.append(read_run_result(folder))
        except UserError as exc:
            skipped.append(str(exc))
    return runs, skipped


def _labels(runs: list[RunResult]) -> list[str]:
    """A config label per run: the experiment, plus ``[key=value, ...]`` where the experiment's
    runs differ in config beyond :data:`IGNORED_KEYS`."""
    labels = []
    for run in runs:
        mates = [other for other in runs if other.experiment == run.experiment]
        keys = sorted({k for other in mates for k in {*other.config, *run.config}
                       if k not in IGNORED_KEYS and other.config.get(k) != run.config.get(k)})
        differs = ", ".join(f"{k}={json.dumps(run.config.get(k))}" for k in keys)
        labels.append(f"{run.experiment} [{differs}]" if differs else run.experiment)
    return labels


def per_run_frame(runs: list[RunResult]) -> pd.DataFrame:
    """One row per run: ``config`` label, ``seed``, ``params`` and a column per metric
    (``"t2v R@1"``, ..., ``"v2t Geom"``, ``"nDCG"`` and ``"mAP"`` in percent or None)."""
    rows = []
    for label, run in zip(_labels(runs), runs):
        row: dict[str, object] = {"config": label, "seed": run.seed, "run_id": run.run_id, "params": run.params}
        for direction, short in DIRECTIONS:
            for key, column in PUBLISHED_COLUMNS:
                row[f"{short} {column}"] = run.metrics.get(direction, {}).get(key)
        for key, column in RELEVANCE_COLUMNS:
            value = run.metrics.get("relevance_metrics", {}).get(key)
            row[column] = None if value is None else 100 * value
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float, std: float, count: int, missing: int = 0) -> str:
    """``mean(std)``, the mean alone for one value, ``–`` for none; runs without the value are
    counted after it (``12.5(0.7) [1 missing]``), never silently left out of the mean."""
    text = "–" if pd.isna(mean) else (f"{mean:.1f}" if count < 2 else f"{mean:.1f}({std:.1f})")
    return f"{text} [{missing} missing]" if missing else text


def unique_seeds(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """``frame`` with one run per (config, seed): the newest (the last run id) of a seed run
    more than once; and config label -> the seeds that were repeated."""
    ordered = frame.sort_values(["config", "seed", "run_id"], kind="stable")
    repeated = ordered[ordered.duplicated(["config", "seed"], keep=False)]
    repeats = {label: sorted(set(group["seed"])) for label, group in repeated.groupby("config")}
    return ordered.drop_duplicates(["config", "seed"], keep="last"), repeats


def _params(values: pd.Series) -> str:
    known = values.dropna()
    return "–" if known.empty else f"{known.iloc[0] / 1e6:.2f}M"


def seed_table(runs: list[RunResult]) -> pd.DataFrame:
    """The published-layout table: ``Config``, ``Seeds``, each metric as ``mean(std)`` text,
    ``Params`` (millions); one row per config, sorted by label. A seed run more than once
    counts once (its newest run), and the Seeds cell says so."""
    frame, repeats = unique_seeds(per_run_frame(runs))
    metric_columns = [f"{short} {column}" for _, short in DIRECTIONS for _, column in PUBLISHED_COLUMNS]
    metric_columns += [column for _, column in RELEVANCE_COLUMNS if frame[column].notna().any()]
    rows = []
    for label, group in frame.groupby("config", sort=True):
        seeds = ",".join(str(s) for s in sorted(group["seed"]))
        if label in repeats:
            seeds += f" (seed {','.join(map(str, repeats[label]))} run again: newest kept)"
        row = {"Config": label, "Seeds": seeds}
        for column in metric_columns:
            values = group[column].astype(float)
            count = int(values.count())
            row[column] = _cell(values.mean(), values.std(ddof=1), count, len(values) - count)
        row["Params"] = _params(group["params"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["Config", "Seeds", *metric_columns, "Params"])


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of ``table`` (text cells, ``|`` escaped)."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    header = line(list(table.columns))
    rule = "|" + "|".join("---" if c in ("Config", "Seeds") else "---:" for c in table.columns) + "|"
    return "\n".join([header, rule, *(line(list(row)) for row in table.itertuples(index=False))])


def write_tables(table: pd.DataFrame, prefix: Path) -> tuple[Path, Path]:
    """Write ``<prefix>.md`` and ``<prefix>.csv`` atomically; returns both paths."""
    prefix = Path(prefix)
    markdown = write_text_atomic(prefix.with_name(prefix.name + ".md"), to_markdown(table) + "\n")
    csv = write_text_atomic(prefix.with_name(prefix.name + ".csv"), table.to_csv(index=False))
    return markdown, csv


def print_and_write_table(runs: list[Path], prefix: Path) -> tuple[Path, Path]:
    """Print the seed table of the finished run folders ``runs`` as markdown and write it as
    ``<prefix>.md`` and ``<prefix>.csv``; returns both paths."""
    found, skipped = read_run_results(runs)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    if not found:
        raise UserError(f"no readable run among {len(runs)} run folder(s)")
    table = seed_table(found)
    print(to_markdown(table))
    return write_tables(table, prefix)
