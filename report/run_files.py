"""Reading a run's JSON files (``config.json``, ``metrics.json``, ``history.json``) defensively.

Any of them may be missing (the run is still training), half-written by another tool, edited
by hand or hold values of the wrong kind. Readers get the value and a one-line problem instead
of an exception, and cleaned copies in which every number is a float or None, so that one
run's bad file never stops the site or a table of other runs.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_json_file(path: Path) -> tuple[object, str | None]:
    """(the JSON value in ``path``, None), or (None, why it cannot be read) for a file that is
    missing, vanished, not UTF-8, truncated or otherwise not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, f"{Path(path).name} is missing"
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"{Path(path).name} is unreadable ({type(exc).__name__})"


def _number(value: object) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _metric_tree(value: object) -> dict:
    """``{direction: {key: number or None}}`` from a metrics object; anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    return {direction: {key: _number(v) for key, v in res.items()}
            for direction, res in value.items() if isinstance(res, dict)}


def clean_history(entries: object) -> list[dict]:
    """The history entries that name an integer epoch, with every loss, lr and validation value
    a float or None (None where the file holds anything else): what the pages and plots draw."""
    if not isinstance(entries, list):
        return []
    clean = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), int):
            continue
        parts = entry.get("loss_parts") if isinstance(entry.get("loss_parts"), dict) else {}
        item = {"epoch": entry["epoch"], "loss": _number(entry.get("loss")), "lr": _number(entry.get("lr")),
                "loss_parts": {str(k): _number(v) for k, v in parts.items()}}
        if isinstance(entry.get("val"), dict):
            item["val"] = _metric_tree(entry["val"])
        clean.append(item)
    return clean


def clean_metrics(value: object) -> dict | None:
    """A run's ``metrics.json`` with every metric a float or None and ``epoch``/``params`` an int
    or None (``not_scored``, ``split`` and ``checkpoint`` kept as text); None when not an object."""
    if not isinstance(value, dict):
        return None
    clean: dict = _metric_tree(value)
    for key in ("epoch", "params"):
        clean[key] = value[key] if isinstance(value.get(key), int) and not isinstance(value[key], bool) else None
    for key in ("not_scored", "split", "checkpoint"):
        if isinstance(value.get(key), str):
            clean[key] = value[key]
    clean.pop("published", None)
    if isinstance(value.get("published"), dict):  # a published model's numbers (report/published.py reads them)
        clean["published"] = value["published"]
    return clean
