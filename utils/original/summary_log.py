"""The original CE trainer's three-seed summary log, ``summary-seed-0_seed-1_seed-2.json``.

Despite its extension the file is plain text: every seed's ``info.log`` concatenated (lines
``<asctime> - <name> - <level> - <message>``), then the statistics that ``log_summary`` appended
(``INFO:summary:[t2v] loaded log file with N lines....``, an optional ``Reporting stats with fixed
training length: N`` and ``R1: <mean>, <std>`` ... ``MeanR: <mean>, <std>``, for t2v then v2t).

Each seed's numbers are read as the original reads them: a seed starts at ``Setting experiment
random seed to <n>``; in a ``test_run`` log it is the seed's first ``test_<t2v|v2t>_metrics_<key>:
<value>`` entry, in a fixed-length log (1k-A, 1k-B) its ``val_`` entry of epoch N.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import UserError
from utils.metric_names import GMEAN_KEY

KEYS = ("R1", "R5", "R10", "R50", "MedR", "MeanR", GMEAN_KEY)
DIRECTIONS = ("t2v", "v2t")
SEED_TAG = re.compile(r"Setting experiment random seed to (\d+)$")
FIXED_TAG = re.compile(r"Reporting stats with fixed training length: (\d+)")
METRIC = re.compile(r"^(test|val)_(t2v|v2t)_metrics_(.+):$")
SUMMARY_ROW = re.compile(r"(R1|R5|R10|R50|MedR|MeanR): (\S+), (\S+)$")


class SummaryLogError(UserError):
    """A summary log that cannot be read or holds no per-seed numbers, naming the file."""


@dataclass
class SummaryLog:
    """What a summary log holds.

    seeds: the seeds in the order their logs were concatenated (the first is the published
    checkpoint's); per_seed: seed -> ``"t2v_metrics"``/``"v2t_metrics"`` -> metric key -> value;
    summary: the appended statistics, direction -> key -> (mean, std); fixed_epochs: N of a
    fixed-length log, else None.
    """

    path: Path
    seeds: list[str]
    per_seed: dict[str, dict[str, dict[str, float]]]
    summary: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    fixed_epochs: int | None = None

    @property
    def first_seed(self) -> dict[str, dict[str, float]]:
        """The numbers of the first seed, the one whose checkpoint is published."""
        return self.per_seed[self.seeds[0]]


def _number(token: str) -> float:
    return float(token.replace("INFO:summary:", "").rstrip(","))


def _statistics(lines: list[str]) -> tuple[dict[str, dict[str, tuple[float, float]]], int | None]:
    """The ``log_summary`` statistics appended after the seeds' logs."""
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    fixed = None
    for direction in DIRECTIONS:
        tag = f"[{direction}] loaded log file"
        starts = [i for i, line in enumerate(lines) if tag in line]
        if not starts:
            continue
        rows: dict[str, tuple[float, float]] = {}
        for line in lines[starts[-1] + 1: starts[-1] + 12]:
            if (match := FIXED_TAG.search(line)) is not None:
                fixed = int(match.group(1))
            elif (match := SUMMARY_ROW.search(line.strip())) is not None and match.group(1) not in rows:
                rows[match.group(1)] = (_number(match.group(2)), _number(match.group(3)))
        summary[direction] = rows
    return summary, fixed


def read_summary_log(path: Path) -> SummaryLog:
    """Parse ``path`` (see the module docstring). SummaryLogError when it cannot be read or
    holds no ``test_``/``val_`` metric entries."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SummaryLogError(f"{path}: cannot read the summary log ({exc.strerror or exc})") from None
    summary, fixed = _statistics(lines)
    subset = "val" if fixed is not None else "test"
    seen: dict[str, dict[str, dict[str, list[float]]]] = {}
    seed = "unknown"
    for line in lines:
        if (match := SEED_TAG.search(line)) is not None:
            seed = match.group(1)
            continue
        if f"{subset}_" not in line:
            continue
        tokens = line.split(" ")
        for position, token in enumerate(tokens[:-1]):
            match = METRIC.match(token)
            if match is None or match.group(1) != subset or match.group(3) not in KEYS:
                continue
            try:
                value = _number(tokens[position + 1])
            except ValueError:
                raise SummaryLogError(f"{path}: {line.strip()!r}: expected a number after {token}") from None
            runs = seen.setdefault(seed, {}).setdefault(f"{match.group(2)}_metrics", {})
            runs.setdefault(match.group(3), []).append(value)
    if not seen:
        raise SummaryLogError(f"{path}: no '{subset}_t2v_metrics_<key>: <value>' lines; expected the original "
                              f"trainer's summary-seed-<a>_seed-<b>_seed-<c>.json")
    pick = (fixed - 1) if fixed is not None else 0
    per_seed = {}
    for name, directions in seen.items():
        per_seed[name] = {}
        for direction, values in directions.items():
            chosen = {key: runs[pick] for key, runs in values.items() if len(runs) > pick}
            if GMEAN_KEY not in chosen and all(k in chosen for k in ("R1", "R5", "R10")):
                chosen[GMEAN_KEY] = math.prod(chosen[k] for k in ("R1", "R5", "R10")) ** (1 / 3)
            per_seed[name][direction] = chosen
    return SummaryLog(path, list(seen), per_seed, summary, fixed)
