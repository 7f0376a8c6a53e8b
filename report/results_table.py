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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from utils.atomic import write_text_atomic
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


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars are leaves)."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_run(models: Path) -> RunResult:
    """The run whose models folder (``.../<experiment>/<run_id>``) is ``models``."""
    models = Path(models)
    metrics = json.loads((models / "metrics.json").read_text(encoding="utf-8"))
    config_file = models / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    return RunResult(models.parent.name, int(config.get("seed", 0)), flatten(config), metrics.get("params"), metrics)


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
        row: dict[str, object] = {"config": label, "seed": run.seed, "params": run.params}
        for direction, short in DIRECTIONS:
            for key, column in PUBLISHED_COLUMNS:
                row[f"{short} {column}"] = run.metrics.get(direction, {}).get(key)
        for key, column in RELEVANCE_COLUMNS:
            value = run.metrics.get("relevance_metrics", {}).get(key)
            row[column] = None if value is None else 100 * value
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean: float, std: float, count: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.1f}" if count < 2 else f"{mean:.1f}({std:.1f})"


def _params(values: pd.Series) -> str:
    known = values.dropna()
    return "–" if known.empty else f"{known.iloc[0] / 1e6:.2f}M"


def seed_table(runs: list[RunResult]) -> pd.DataFrame:
    """The published-layout table: ``Config``, ``Seeds``, each metric as ``mean(std)`` text,
    ``Params`` (millions); one row per config, sorted by label."""
    frame = per_run_frame(runs)
    metric_columns = [f"{short} {column}" for _, short in DIRECTIONS for _, column in PUBLISHED_COLUMNS]
    metric_columns += [column for _, column in RELEVANCE_COLUMNS if frame[column].notna().any()]
    rows = []
    for label, group in frame.groupby("config", sort=True):
        row = {"Config": label, "Seeds": ",".join(str(s) for s in sorted(group["seed"]))}
        for column in metric_columns:
            values = group[column].astype(float)
            row[column] = _cell(values.mean(), values.std(ddof=1), int(values.count()))
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
    table = seed_table([read_run(run) for run in runs])
    print(to_markdown(table))
    return write_tables(table, prefix)
