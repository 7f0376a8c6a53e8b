"""Fetch a published CE / MoEE / TeachText model by name: its config.json, trained_model.pth and
three-seed summary log, into the original's layout under --save_dir (default: data):

  data/models/<experiment>/<group_id>/<seed_dir>/<timestamp>/{config.json,trained_model.pth}
  data/log/<experiment>/<group_id>/<seed_dir>/<timestamp>/summary-seed-0_seed-1_seed-2.json

Names, numbers and places come from misc/published/models.json (--list prints it). Files stream
with a progress bar; an interrupted download resumes (HTTP Range) when re-run; the received
size must be the announced one. The first download records each file's sha256 in published.json
beside the checkpoint; later runs verify the files against it, and a re-download (--force) whose
bytes differ is refused. --root_url (or $CE_MODELS_ROOT_URL) names a mirror: the folder holding
models/ and log/, or the site folder holding data/models/ and data/log/ as the original server.
Exit status: 0 on success, 1 on a failed transfer or check (one line on stderr), 2 on bad input.

Examples (from the repository root):

  python3 misc/sync_models.py --list --dataset MSRVTT
  python3 misc/sync_models.py --experiment msrvtt-train-full-ce
  python3 test.py --resume data/models/msrvtt-train-full-ce/074e6b24/seed-0/2020-01-07_15-24-30/trained_model.pth
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import repo_root  # noqa: F401  (the repository root on sys.path: misc/repo_root.py)

# isort: split
from report.published import RECORD, PublishedModel, for_experiment, load_registry, url_roots, with_docs_table
from utils.atomic import write_text_atomic
from utils.cli import run_cli
from utils.download import DownloadError, NotFoundError, download, file_digest
from utils.errors import UserError

ROOT_URL_ENV = "CE_MODELS_ROOT_URL"


def root_url(model: PublishedModel, given: str | None, defaults: dict[str, str]) -> str:
    """``--root_url``, else ``$CE_MODELS_ROOT_URL``, else the model's server (CE or TeachText)."""
    return (given or os.environ.get(ROOT_URL_ENV) or defaults[model.url_root]).rstrip("/")


def not_found_hint(model: PublishedModel, defaults: dict[str, str], mirror: bool) -> str:
    """What a 404 should add: the other root for a TeachText model, the mirror option otherwise."""
    if model.url_root == "teachtext":
        return (f" ({model.name} is a TeachText model: its files are under {defaults['teachtext']}, not "
                f"{defaults['ce']}; check --root_url / ${ROOT_URL_ENV})")
    return f" (check --root_url / ${ROOT_URL_ENV})" if mirror else ""


def read_record(path: Path) -> dict:
    """The published.json record (``{"entry", "root_url", "files": {relative path: {...}}}``) or an empty one."""
    if not path.is_file():
        return {"files": {}}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record.get("files"), dict):
            raise ValueError
    except (ValueError, AttributeError):
        raise UserError(f"{path}: not a sha256 record of misc/sync_models.py; move it away and re-run") from None
    return record


def fetch_file(url: str, local: Path, recorded: str | None, force: bool, hint: str) -> tuple[str, bool]:
    """Make ``local`` hold ``url``'s bytes; returns (sha256, whether it was downloaded).

    An existing file is kept (and must match ``recorded`` when there is one) unless ``force``;
    downloaded bytes whose sha256 differs from ``recorded`` are deleted and refused.
    """
    if local.is_file() and not force:
        digest = file_digest(local)
        if recorded is not None and digest != recorded:
            raise DownloadError(f"{local}: sha256 {digest} differs from the {recorded} recorded at its first "
                                f"download; it was changed on disk: delete it and re-run to fetch it again")
        return digest, False
    partial = local.with_name(local.name + ".partial")
    download(url, partial, hint)
    digest = file_digest(partial)
    if recorded is not None and digest != recorded:
        partial.unlink()
        raise DownloadError(f"{url}: sha256 {digest} differs from the {recorded} recorded at the first "
                            f"download; refused, {local.name} was not replaced (check the server or --root_url)")
    partial.replace(local)
    return digest, True


def fetch_from(bases: list[str], relative: str, local: Path, recorded: str | None, force: bool,
               hint: str) -> tuple[str, bool, list[str]]:
    """:func:`fetch_file` from the first of ``bases`` that has ``relative`` (a 404 tries the next);
    returns (sha256, downloaded, ``[the base that served it]``)."""
    for base in bases[:-1]:
        try:
            return (*fetch_file(f"{base}/{relative}", local, recorded, force, hint), [base])
        except NotFoundError:
            continue  # a mirror's layout, once found, serves the other files too
    return (*fetch_file(f"{bases[-1]}/{relative}", local, recorded, force, hint), bases[-1:])


def sync_model(model: PublishedModel, root: str, save_dir: Path, force: bool, hint: str, mirror: bool) -> Path:
    """Fetch every file of ``model`` from ``root`` into ``save_dir``; returns the checkpoint path.
    A ``mirror`` root may also be a copy of the original site, holding ``data/models`` and ``data/log``."""
    files = model.files()
    checkpoint = save_dir / next(rel for rel, name in files.items() if name == "trained_model.pth")
    record_path = checkpoint.parent / RECORD
    record = read_record(record_path)
    bases = [root, f"{root}/data"] if mirror and not root.endswith("/data") else [root]
    for relative, name in files.items():
        local = save_dir / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        recorded = record["files"].get(relative, {}).get("sha256")
        try:
            digest, fetched, bases = fetch_from(bases, relative, local, recorded, force, hint)
        except NotFoundError as exc:
            if name != model.summary_log:
                raise
            print(f"warning: {exc}; no summary log, so test.py will show the paper's numbers only", file=sys.stderr)
            continue
        record["files"][relative] = {"url": f"{bases[0]}/{relative}", "sha256": digest,
                                     "size": local.stat().st_size}
        record.update(entry=model.__dict__, root_url=bases[0])
        write_text_atomic(record_path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"{'fetched' if fetched else 'verified'} {local} (sha256 {digest[:12]}…)")
    return checkpoint


def list_models(models: list[PublishedModel]) -> None:
    """Print the registry as a table: name, dataset, server, published t2v geom, params, config."""
    print(f"{'name':64s} {'dataset':14s} {'server':9s} {'t2v geom':>10s} {'params':>12s}  config")
    for model in models:
        geom = (model.t2v or {}).get("geom")
        cell = "–" if geom is None else f"{geom[0]:.1f}({geom[1]:.1f})"
        params = "–" if model.params is None else f"{model.params:,d}"
        print(f"{model.name:64s} {model.dataset:14s} {model.url_root:9s} {cell:>10s} {params:>12s}  "
              f"{model.config or '(download only)'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", nargs="+", default=[], metavar="NAME",
                        help="registry names to fetch (see --list), e.g. msrvtt-train-full-ce")
    parser.add_argument("--dataset", nargs="+", default=[], metavar="DATASET",
                        help="every published model of these datasets (MSRVTT, MSVD, DiDeMo, activity-net, "
                             "LSMDC, QuerYD, QuerYDSegments); with --list, only those")
    parser.add_argument("--list", action="store_true", help="print the registry as a table and exit")
    parser.add_argument("--root_url", help=f"mirror to fetch from instead of the original servers "
                                           f"(default: ${ROOT_URL_ENV}, else the registry's CE or TeachText root)")
    parser.add_argument("--save_dir", type=Path, default=Path("data"),
                        help="where models/ and log/ go (default: data, the original's layout)")
    parser.add_argument("--registry", type=Path, help="registry file (default: misc/published/models.json)")
    parser.add_argument("--force", action="store_true",
                        help="download the files again (refused when the bytes differ from the recorded sha256)")
    parser.add_argument("--write_docs", type=Path, metavar="PAGE",
                        help="regenerate the registry table in PAGE (docs/published-models.md) and exit")
    args = parser.parse_args()
    if not (args.list or args.write_docs) and not (args.experiment or args.dataset):
        parser.error("give --experiment NAME [NAME ...], --dataset DATASET [...], --list or --write_docs PAGE")
    return args


def main() -> int:
    args = parse_args()
    registry = load_registry(args.registry)
    if args.write_docs:
        write_text_atomic(args.write_docs, with_docs_table(args.write_docs.read_text(encoding="utf-8"), registry))
        print(f"wrote the table of {len(registry)} published models into {args.write_docs}")
        return 0
    known = {model.dataset.lower(): model.dataset for model in registry.values()}
    for dataset in args.dataset:
        if dataset.lower() not in known:
            raise UserError(f"--dataset {dataset}: no published model; expected one of "
                            f"{', '.join(sorted(known.values()))}")
    datasets = {d.lower() for d in args.dataset}
    chosen = [model for model in registry.values() if model.dataset.lower() in datasets]
    for name in args.experiment:
        model = registry.get(name) or for_experiment(registry, name)
        if model is None:
            raise UserError(f"--experiment {name}: not in {args.registry or 'misc/published/models.json'}; "
                            f"python3 misc/sync_models.py --list shows the names")
        chosen.append(model)
    if args.list:
        list_models(chosen or list(registry.values()))
        return 0
    defaults = url_roots(args.registry)
    try:
        for model in chosen:
            mirror = bool(args.root_url or os.environ.get(ROOT_URL_ENV))
            root = root_url(model, args.root_url, defaults)
            hint = not_found_hint(model, defaults, mirror)
            checkpoint = sync_model(model, root, args.save_dir, args.force, hint, mirror)
            print(f"{model.name}: evaluate with: python3 test.py --resume {checkpoint}")
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
