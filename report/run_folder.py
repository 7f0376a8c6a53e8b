"""The run folder layout: ``<save_dir>/{models,log,web}/<experiment>/<run_id>/``."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunDirs:
    """Where one run writes: checkpoints and config (models), logs (log), HTML pages (web)."""

    models: Path
    log: Path
    web: Path

    def create(self) -> "RunDirs":
        for path in (self.models, self.log, self.web):
            path.mkdir(parents=True, exist_ok=True)
        return self


def experiment_name(config_path: Path) -> str:
    """``configs/synthetic/train-ce.json`` -> ``synthetic-train-ce``."""
    path = Path(config_path)
    return f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem


def new_run_dirs(save_dir: Path, experiment: str) -> RunDirs:
    """Fresh folders for a new run, named by the start time (``<stamp>``, else ``<stamp>_2``, ...).

    The run id is claimed by creating its models folder with a plain ``mkdir``, which fails when
    the folder exists: of runs started in the same second, each gets a folder of its own.
    """
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    models = experiment_folder(save_dir, experiment)
    models.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        run_id = stamp if n == 1 else f"{stamp}_{n}"
        try:
            (models / run_id).mkdir()
        except FileExistsError:
            n += 1
        else:
            return run_dirs(Path(save_dir), experiment, run_id).create()


def run_dirs(save_dir: Path, experiment: str, run_id: str) -> RunDirs:
    return RunDirs(*(Path(save_dir) / kind / experiment / run_id for kind in ("models", "log", "web")))


def run_dirs_of_checkpoint(checkpoint: Path) -> RunDirs:
    """The run folders a checkpoint belongs to; a stray checkpoint gets folders beside it.

    A published model of the original (``<save_dir>/models/<experiment>/<group>/seed-<n>/<stamp>/``)
    logs to ``<save_dir>/log/<experiment>/<group>/seed-<n>/<stamp>/``, as the original did."""
    folder = Path(checkpoint).resolve().parent
    if len(folder.parents) >= 5 and folder.parents[3].name == "models" and folder.parent.name.startswith("seed-"):
        run_id = f"{folder.parents[1].name}/{folder.parent.name}/{folder.name}"
        return run_dirs(folder.parents[4], folder.parents[2].name, run_id).create()
    if len(folder.parents) >= 3 and folder.parents[1].name == "models":
        save_dir, experiment, run_id = folder.parents[2], folder.parent.name, folder.name
        return run_dirs(save_dir, experiment, run_id).create()
    return RunDirs(folder, folder / "log", folder / "web").create()


def remove_run_dirs(dirs: RunDirs) -> None:
    """Delete a run's three folders (a run that stopped before writing any checkpoint)."""
    for path in (dirs.models, dirs.log, dirs.web):
        shutil.rmtree(path, ignore_errors=True)


def experiment_folder(save_dir: Path, experiment: str) -> Path:
    """The folder holding the models folders of every run of ``experiment``: ``<save_dir>/models/<experiment>``."""
    return Path(save_dir) / "models" / experiment


def model_folders(save_dir: Path) -> list[Path]:
    """The models folder of every run under ``save_dir`` that has written its config."""
    return [config.parent for config in (Path(save_dir) / "models").glob("*/*/config.json")]


def web_folder(save_dir: Path, models: Path) -> Path:
    """Where the pages of the run whose models folder is ``models`` go: ``<save_dir>/web/<experiment>/<run_id>``."""
    return Path(save_dir) / "web" / Path(models).parent.name / Path(models).name


def site_index_folder(save_dir: Path) -> Path:
    """The folder of the site index, ``<save_dir>/web``."""
    return Path(save_dir) / "web"


def runs_of_config(save_dir: Path, experiment: str, config: dict) -> list[Path]:
    """The models folders of ``experiment`` under ``save_dir`` whose ``config.json`` holds exactly
    ``config`` (the resolved config of a run), oldest first; unreadable ones are left out."""
    wanted = json.loads(json.dumps(config))
    found = []
    for folder in sorted(experiment_folder(save_dir, experiment).glob("*/")):
        try:
            if json.loads((folder / "config.json").read_text(encoding="utf-8")) == wanted:
                found.append(folder)
        except (OSError, ValueError):
            continue
    return found


def newest_checkpoint(models: Path) -> Path | None:
    """The epoch checkpoint of the highest epoch in a models folder (written atomically, so
    complete), or None."""
    epochs = {int(p.stem.removeprefix("checkpoint-epoch")): p for p in Path(models).glob("checkpoint-epoch*.pth")
              if p.stem.removeprefix("checkpoint-epoch").isdigit()}
    return epochs[max(epochs)] if epochs else None
