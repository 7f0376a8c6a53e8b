"""Download, verify and unpack the released expert-feature archives of the original CE project.

Each archive is fetched from ``<root_url>/<release>/<archive>`` into
``<data_dir>/<DATASET>/<archive>.partial`` (an interrupted download resumes with an HTTP Range
request), renamed to ``<archive>`` once complete, checked against its published sha1
(misc/manifests/<release>.json), unpacked into a staging folder and only then moved into
``<data_dir>/<DATASET>/``. A ``<archive>.verified`` marker records the result, so a re-run skips
datasets that are already done. Archive members are repository-relative paths
(``data/MSRVTT/structured-symlinks/...``); a member that would land outside
``<data_dir>/<DATASET>/`` (absolute paths, ``..``, a link whose target leaves the folder once
followed through the archive's other links and the links already on disk, a member written
through a link) aborts the unpacking before anything is moved into place. The marker and the
download are never written through a link. After a verified unpack the .tar.gz is deleted unless
--keep_archive is given; an archive already at ``<data_dir>/<DATASET>/<archive>`` (e.g. copied
by hand) is verified and unpacked without downloading.

Archives without a published sha1 (see misc/manifests/README.md) are refused unless --manifest
gives their sha1 or --allow_unverified is passed. Exit status: 0 on success, 1 on a failure
(explained in one line on stderr), 2 on bad arguments, 130 when interrupted (re-run to resume).

Examples (from the repository root):

  python3 misc/sync_experts.py --dataset MSRVTT MSVD
  python3 misc/sync_experts.py --dataset MSRVTT --release high-quality
  python3 misc/sync_experts.py --dataset LSMDC --access_code <code from the CE authors>
  python3 misc/sync_experts.py --verify --config <original CE config.json>
  python3 misc/sync_experts.py --dataset EPIC-KITCHENS-100

EPIC-KITCHENS-100 is not a CE archive: ``--dataset EPIC-KITCHENS-100`` fetches the two official
test annotation files (from the annotations repository at a fixed commit, or --root_url) into
``<data_dir>/EPIC-KITCHENS-100/ranp/annotation/epic100RET/``, each checked against its sha1.
Its features are hosted elsewhere (RANP's Zenodo archive): docs/epic-kitchens-100.md says where
and how to place them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

import requests
import urllib3
from repo_root import REPO  # the repository root, put on sys.path (misc/repo_root.py)
from tqdm import tqdm

# isort: split
from data_loader.released.datasets import DEFAULT_ROOT_FEAT_FOLDER
from data_loader.released.datasets import RELEASES as DATASET_RELEASES
from data_loader.released.epic_kitchens import ANNOTATION_DIR as EPIC_ANNOTATION_DIR
from data_loader.released.epic_kitchens import DATASET as EPIC_KITCHENS
from data_loader.released.release_plan import config_plans, released_files
from data_loader.store.feature_store import StoreError
from trainer import build  # noqa:F401  (fills the registries that configs are validated against)
from utils.atomic import SymlinkError, refuse_symlink, remove_path, write_text_atomic
from utils.config.load import load_config
from utils.errors import ConfigError

MANIFEST_DIR = REPO / "misc" / "manifests"
DATASETS = ("MSRVTT", "MSVD", "DiDeMo", "activity-net", "LSMDC", "YouCook2", "QuerYD", "QuerYDSegments")
RELEASES = ("features-v2", "high-quality")
EPIC_ANNOTATIONS_URL = ("https://raw.githubusercontent.com/epic-kitchens/epic-kitchens-100-annotations/"
                        "ea8b40457a400c3fffa1c7f406ef3dc169cc2522/retrieval_annotations")
# The official test annotations the EPIC-KITCHENS-100 conversion reads, with their sha1.
EPIC_ANNOTATIONS = {"EPIC_100_retrieval_test.csv": "bafbf59f20e271920bd9b6f88d46eb7146495b58",
                    "EPIC_100_retrieval_test_sentence.csv": "64461759885aeb2b5cb444958bcf3bb9ee6cc8bc"}
EPIC_RELEASE_FOLDER = "ranp"  # the root_feat_folder of configs/epic-kitchens-100/
DEFAULT_ROOT_URLS = {
    "features-v2": "https://www.robots.ox.ac.uk/~vgg/research/collaborative-experts/data",
    "high-quality": "https://www.robots.ox.ac.uk/~vgg/research/teachtext/data-hq",
}
ROOT_URL_ENV = "CE_FEATURES_ROOT_URL"
CHUNK = 1 << 20
MAX_LINK_HOPS = 40  # as the Linux kernel allows
TIMEOUT = (15, 60)  # seconds: connect, between bytes
SHA1 = re.compile(r"[0-9a-f]{40}")


class SyncError(Exception):
    """A failure the user can act on, described in one line."""


def archive_name(dataset: str, release: str) -> str:
    """Local archive file name: ``MSRVTT-experts.tar.gz`` or ``high-quality-MSRVTT-experts.tar.gz``."""
    return f"{dataset}-experts.tar.gz" if release == "features-v2" else f"{release}-{dataset}-experts.tar.gz"


def remote_name(archive: str, access_code: str | None) -> str:
    """Server-side name: with an access code, prefixed by the first 10 hex chars of its sha256."""
    if not access_code:
        return archive
    return f"{hashlib.sha256(access_code.encode('utf-8')).hexdigest()[:10]}-{archive}"


def root_url(release: str, given: str | None) -> str:
    """``--root_url``, else ``$CE_FEATURES_ROOT_URL``, else the release's default server."""
    return (given or os.environ.get(ROOT_URL_ENV) or DEFAULT_ROOT_URLS[release]).rstrip("/")


def load_manifest(release: str, extra: Path | None) -> dict[str, str]:
    """Archive name -> sha1 from misc/manifests/<release>.json, overridden by ``extra`` entries."""
    default = MANIFEST_DIR / f"{release}.json"
    manifest: dict[str, str] = {}
    for path in [p for p in (default if default.exists() else None, extra) if p is not None]:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SyncError(f"{path}: cannot read manifest ({exc})") from None
        if not isinstance(data, dict):
            raise SyncError(f"{path}: expected a JSON object mapping archive name -> sha1")
        for name, digest in data.items():
            if not isinstance(digest, str) or not SHA1.fullmatch(digest.lower()):
                raise SyncError(f"{path}: {name}: expected a 40-character hex sha1, got {digest!r}")
            manifest[name] = digest.lower()
    return manifest


def sha1_of(path: Path) -> str:
    """Hex sha1 of a file, read in chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """A short reason for a network error: the OS-level one if any (e.g. 'Connection refused')."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound guards against cycles
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        inner = getattr(seen, "reason", None)
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__ or seen.__context__)
    text = next((arg for arg in exc.args if isinstance(arg, str)), "")
    return text or type(exc).__name__


def _request(url: str, offset: int) -> requests.Response:
    """GET ``url`` streamed, asking for bytes from ``offset`` on when it is non-zero."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return requests.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except requests.Timeout:
        raise SyncError(f"{url}: the server did not answer in time; re-run later or check --root_url") from None
    except requests.RequestException as exc:
        raise SyncError(f"{url}: cannot connect ({_reason(exc)}); check your network or --root_url") from None


def _range_start(response: requests.Response) -> int | None:
    """First byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _range_total(response: requests.Response) -> int | None:
    """Full size the server reports in a 416 answer (``Content-Range: bytes */TOTAL``)."""
    match = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def download(url: str, partial: Path) -> None:
    """Stream ``url`` into ``partial``, resuming from its current size when the server allows it.

    A server that ignores the Range header (200) or answers with another start restarts the
    download from zero. Raises SyncError on HTTP errors or a broken connection (the bytes
    received so far stay in ``partial`` for the next run).
    """
    offset = partial.stat().st_size if partial.exists() else 0
    with _request(url, offset) as response:
        if response.status_code == 416 and offset and _range_total(response) == offset:
            return  # the previous run had already received every byte
        if response.status_code == 206 and _range_start(response) == offset:
            mode = "ab"
        elif response.status_code == 200:
            offset, mode = 0, "wb"
        elif offset and response.status_code in (206, 416):
            partial.unlink()
            return download(url, partial)
        else:
            hint = " (check --root_url, --release and, for LSMDC, --access_code)" if response.status_code == 404 else ""
            raise SyncError(f"{url}: HTTP {response.status_code} {response.reason}{hint}")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        partial.parent.mkdir(parents=True, exist_ok=True)
        refuse_symlink(partial)
        with open(partial, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=partial.name.removesuffix(".partial"),
                                              disable=None) as bar:
            try:
                for chunk in response.raw.stream(CHUNK, decode_content=False):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise SyncError(f"{url}: download interrupted ({_reason(exc)}) after {out.tell()} bytes; "
                                f"re-run the same command to resume") from None
            received = out.tell()
    if total is not None and received != total:
        raise SyncError(f"{url}: download ended after {received} of {total} bytes; "
                        f"re-run the same command to resume")


def check_member(member: tarfile.TarInfo, dataset: str) -> None:
    """Raise SyncError unless ``member``'s path (and a hard link's target) is a plain relative path
    inside ``data/<dataset>/`` and it is a file, folder or link."""
    prefix = ("data", dataset)

    def inside(name: str, what: str) -> None:
        path = PurePosixPath(name)
        if path.is_absolute():
            raise SyncError(f"archive member {member.name!r}: {what} is an absolute path")
        if ".." in path.parts:
            raise SyncError(f"archive member {member.name!r}: {what} contains '..'")
        parts = tuple(p for p in path.parts if p != ".")
        if parts[:2] != prefix and not (member.isdir() and parts == prefix[:len(parts)]):
            raise SyncError(f"archive member {member.name!r}: {what} is outside data/{dataset}/")

    inside(member.name, "path")
    if member.issym() and PurePosixPath(member.linkname).is_absolute():
        raise SyncError(f"archive member {member.name!r}: symlink to absolute path {member.linkname!r}")
    if member.islnk():
        inside(member.linkname, "hard link target")
    elif not (member.isreg() or member.isdir() or member.issym()):
        raise SyncError(f"archive member {member.name!r}: device or special file")


def _relative(name: str) -> tuple[str, ...]:
    """An archive path ``data/<dataset>/x/y`` (already checked) -> ``("x", "y")``."""
    return tuple(p for p in PurePosixPath(name).parts if p != ".")[2:]


class LinkGuard:
    """Checks archive members, in archive order, against the tree they make under ``data/<dataset>/``.

    Link targets are resolved component by component as the filesystem resolves them once the
    archive is unpacked: through the archive's own links (wherever they come in the archive) and
    through links already on disk in the dataset folder (a path the archive holds replaces what
    is on disk there). A symlink whose target leaves the folder is refused, and so is a member
    written through or over a link, a link replacing another member, a hard link to anything but
    a regular file earlier in the archive, and a member taking the name of this tool's own files.
    """

    def __init__(self, dataset: str, folder: Path, reserved: str):
        self.dataset, self.folder, self.reserved = dataset, folder, reserved
        self.entries: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self.folders: set[tuple[str, ...]] = set()  # parents of members (created by tar when absent)

    def _refused(self, member: tarfile.TarInfo, why: str) -> SyncError:
        return SyncError(f"archive member {member.name!r}: {why}")

    def add(self, member: tarfile.TarInfo) -> None:
        """Check ``member`` (SyncError naming it when refused) and record it."""
        check_member(member, self.dataset)
        path = _relative(member.name)
        if not path:
            return
        if path[0].startswith((self.reserved, f".{self.reserved}")):
            raise self._refused(member, f"would replace a file of this tool ({path[0]})")
        for depth in range(1, len(path)):
            above = self.entries.get(path[:depth])
            if above is not None and not above.isdir():
                raise self._refused(member, f"lies under {'/'.join(path[:depth])!r}, a link or file of the archive "
                                           "(nothing is written through a link)")
        if (path in self.entries or path in self.folders) and not self._same_kind(path, member):
            raise self._refused(member, "takes the path of a link or of another kind of member of the archive")
        if member.islnk():
            source = self.entries.get(_relative(member.linkname))
            if source is None or not source.isreg():
                raise self._refused(member, "hard link to something other than a regular file earlier in the archive")
        self.entries[path] = member
        self.folders.update(path[:depth] for depth in range(1, len(path)))
        if member.issym():
            self.check_link(path, member)

    def _same_kind(self, path: tuple[str, ...], member: tarfile.TarInfo) -> bool:
        """Whether ``member`` may replace what the archive already put at ``path``: a file another
        file, a folder another folder (links are never replaced nor replace anything)."""
        earlier = self.entries.get(path)
        if earlier is None:  # a folder made for earlier members
            return member.isdir()
        return (earlier.isreg() and member.isreg()) or (earlier.isdir() and member.isdir())

    def check_link(self, path: tuple[str, ...], member: tarfile.TarInfo) -> None:
        """SyncError unless symlink ``member`` at ``path`` resolves inside the dataset folder."""
        if self.resolve(path[:-1] + tuple(member.linkname.split("/"))) is None:
            raise self._refused(member, f"symlink {member.linkname!r} resolves outside data/{self.dataset}/")

    def check_all_links(self) -> None:
        """Re-check every symlink against the complete archive (a later link changes earlier targets)."""
        for path, member in self.entries.items():
            if member.issym():
                self.check_link(path, member)

    def resolve(self, parts: tuple[str, ...]) -> tuple[str, ...] | None:
        """Where ``parts`` (relative to the dataset folder) leads once every link is followed; None
        when it leaves the folder, goes through an absolute link or loops."""
        done: list[str] = []
        todo = list(parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            done.append(part)
            target = self._link(tuple(done))
            if target is None:
                continue
            hops += 1
            if hops > MAX_LINK_HOPS or target.startswith("/"):
                return None
            done.pop()
            todo = target.split("/") + todo
        return tuple(done)

    def _link(self, path: tuple[str, ...]) -> str | None:
        """The target of the symlink at ``path`` once unpacked (the archive's entry, else the disk's)."""
        entry = self.entries.get(path)
        if entry is not None or path in self.folders:
            return entry.linkname if entry is not None and entry.issym() else None
        for depth in range(1, len(path) + 1):
            on_disk = self.folder.joinpath(*path[:depth])
            if on_disk.is_symlink():
                return os.readlink(on_disk) if depth == len(path) else None
        return None


def merge_into(src: Path, dst: Path) -> None:
    """Move the contents of ``src`` into ``dst``, merging folders and replacing files."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            merge_into(entry, target)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)


class UnpackError(SyncError):
    """An archive that cannot be read to its end (truncated, not a tar.gz) or written out."""


def extract(archive: Path, data_dir: Path, dataset: str) -> int:
    """Unpack ``archive`` into ``<data_dir>/<dataset>/`` via a staging folder; returns the member count.

    Members ``data/<dataset>/...`` land in ``<data_dir>/<dataset>/...``. Every member is checked
    (:class:`LinkGuard`) before it is written, and every link again once the whole archive is
    known; on any rejection the staging folder is removed and nothing is moved.
    """
    staging = data_dir / dataset / f".{archive.name}.extracting"
    remove_path(staging)
    staging.mkdir(parents=True)
    safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    guard = LinkGuard(dataset, data_dir / dataset, archive.name)
    try:
        count = 0
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                guard.add(member)
                tar.extract(member, staging, **safety)
                count += 1
        guard.check_all_links()
        unpacked = staging / "data" / dataset
        if unpacked.is_dir():
            merge_into(unpacked, data_dir / dataset)
    except SyncError as exc:
        raise SyncError(f"{archive.name}: refused to unpack, nothing was unpacked: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UnpackError(f"{archive}: cannot unpack ({exc}); nothing was moved into place") from None
    finally:
        remove_path(staging)
    return count


def marker_matches(marker: Path, expected: str | None) -> bool:
    """Whether ``marker`` records a finished extraction of the archive with sha1 ``expected``."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(recorded, dict) and (expected is None or recorded.get("sha1") == expected)


def write_marker(marker: Path, record: dict) -> None:
    """Write the ``.verified`` marker atomically, never through a link (SymlinkError if one is there)."""
    write_text_atomic(marker, json.dumps(record, indent=2) + "\n")


def sync_dataset(dataset: str, release: str, url_root: str, data_dir: Path, manifest: dict[str, str],
                 access_code: str | None = None, allow_unverified: bool = False, keep_archive: bool = False,
                 report: Callable[[str], None] = lambda line: None) -> None:
    """Fetch, verify and unpack one dataset's archive (see the module docstring)."""
    archive = archive_name(dataset, release)
    folder = data_dir / dataset
    marker = folder / f"{archive}.verified"
    expected = manifest.get(archive)
    if expected is None and not allow_unverified:
        raise SyncError(f"{archive}: no published sha1 in misc/manifests/{release}.json; pass --manifest FILE "
                        f"with its sha1, or --allow_unverified to unpack it unchecked")
    if marker_matches(marker, expected):
        report(f"{dataset}: {archive} already verified and unpacked ({marker}); nothing to do")
        return
    local = folder / archive
    url = f"{url_root}/{release}/{remote_name(archive, access_code if dataset == 'LSMDC' else None)}"
    if not local.exists():
        report(f"{dataset}: downloading {url}")
        partial = folder / f"{archive}.partial"
        download(url, partial)
        partial.replace(local)
    report(f"{dataset}: checking sha1 of {local}")
    actual = sha1_of(local)
    if expected is not None and actual != expected:
        local.unlink()
        raise SyncError(f"{archive}: sha1 {actual} does not match the manifest's {expected}; the archive was "
                        f"deleted and nothing was unpacked: re-run to fetch it again, and if it fails again "
                        f"check the mirror (--root_url) or the manifest")
    report(f"{dataset}: unpacking {local} into {folder}")
    try:
        count = extract(local, data_dir, dataset)
    except UnpackError as exc:
        if expected is not None:
            raise
        raise UnpackError(f"{exc}; it has no sha1 to check it against and may be an incomplete download: "
                          f"delete {local} and re-run to fetch it again") from None
    write_marker(marker, {"archive": archive, "url": url, "sha1": actual, "sha1_checked": expected is not None,
                          "members": count})
    if not keep_archive:
        local.unlink()
    report(f"{dataset}: done, {count} archive members unpacked ({'sha1 verified' if expected else 'UNVERIFIED'})")


def sync_epic_annotations(data_dir: Path, url_root: str | None = None,
                          report: Callable[[str], None] = lambda line: None) -> Path:
    """Fetch the official EPIC-KITCHENS-100 test annotations (checked against their sha1) into the
    release folder the EPIC-KITCHENS-100 configs read; returns that folder."""
    folder = data_dir / EPIC_KITCHENS / EPIC_RELEASE_FOLDER / EPIC_ANNOTATION_DIR
    for name, expected in EPIC_ANNOTATIONS.items():
        target = folder / name
        if target.is_file() and sha1_of(target) == expected:
            report(f"{EPIC_KITCHENS}: {target} already verified; nothing to do")
            continue
        partial = folder / f"{name}.partial"
        url = f"{url_root or EPIC_ANNOTATIONS_URL}/{name}"
        report(f"{EPIC_KITCHENS}: downloading {url}")
        download(url, partial)
        actual = sha1_of(partial)
        if actual != expected:
            partial.unlink()
            raise SyncError(f"{url}: sha1 {actual} is not the published file's {expected}; nothing was kept")
        refuse_symlink(target)
        partial.replace(target)
    report(f"{EPIC_KITCHENS}: annotations in {folder}; the TBN features, captions and class annotations come "
           "from RANP's release (see docs/epic-kitchens-100.md)")
    return folder


def needed_files(config_path: Path, data_dir: Path) -> tuple[str, str, list[Path]]:
    """(data folder, root_feat_folder, local paths) of the released files a config reads, for
    training and for its test run (``eval_settings``), as the conversion into the store reads them."""
    try:
        config = load_config(config_path)
        args = config["data_loader"]["args"]
        dataset = args["dataset_name"]
        if dataset not in DATASET_RELEASES:
            raise SyncError(f"{config_path}: data_loader.args.dataset_name: {dataset!r} has no released "
                            f"features; expected one of: {', '.join(DATASET_RELEASES)}")
        files = dict.fromkeys(path for plan in config_plans(config, dataset) for path in released_files(plan))
    except (ConfigError, StoreError) as exc:
        raise SyncError(str(exc)) from None
    root_feat_folder = args.get("root_feat_folder", DEFAULT_ROOT_FEAT_FOLDER)
    root = data_dir / DATASET_RELEASES[dataset].folder / root_feat_folder
    return DATASET_RELEASES[dataset].folder, root_feat_folder, [root / relative for relative in files]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", choices=(*DATASETS, EPIC_KITCHENS), metavar="DATASET",
                        help=f"datasets to fetch, any of: {', '.join(DATASETS)}; or {EPIC_KITCHENS} "
                             "(its official test annotations only)")
    parser.add_argument("--release", default="features-v2", choices=RELEASES,
                        help="features-v2: the CE paper's features (default); high-quality: the TeachText ones")
    parser.add_argument("--root_url", help=f"server folder holding <release>/<archive> (default: ${ROOT_URL_ENV}, "
                                           f"else {DEFAULT_ROOT_URLS['features-v2']} for features-v2 and "
                                           f"{DEFAULT_ROOT_URLS['high-quality']} for high-quality)")
    parser.add_argument("--manifest", type=Path, help="JSON file archive name -> sha1; its entries take precedence "
                                                      "over misc/manifests/<release>.json")
    parser.add_argument("--access_code", help="LSMDC access code, given by the CE authors once MPII grants "
                                              "access (used for LSMDC only)")
    parser.add_argument("--data_dir", type=Path, default=Path("data"),
                        help="where data/<DATASET>/ of the archives is unpacked (default: data)")
    parser.add_argument("--allow_unverified", action="store_true",
                        help="unpack archives that have no published sha1 (never ones whose sha1 differs)")
    parser.add_argument("--keep_archive", action="store_true", help="keep the .tar.gz after a verified unpack")
    parser.add_argument("--verify", action="store_true",
                        help="list the released files CONFIG needs and whether each is under --data_dir")
    parser.add_argument("--config", type=Path, help="config file for --verify (inherit_from is followed)")
    args = parser.parse_args(argv)
    if args.verify and args.config is None:
        parser.error("--verify needs --config CONFIG")
    if not args.verify and not args.dataset:
        parser.error("give --dataset DATASET [DATASET ...] (or --verify --config CONFIG)")
    return args


def run_verify(config: Path, data_dir: Path) -> int:
    """Print the presence of every released file ``config`` needs; 1 if any is missing."""
    folder, root_feat_folder, paths = needed_files(config, data_dir)
    missing = [path for path in paths if not path.exists()]
    for path in paths:
        print(f"{'MISSING' if path in missing else 'ok     '} {path}")
    print(f"{folder}: {len(paths) - len(missing)} of {len(paths)} files {config} needs present under {data_dir}")
    if missing:
        release = " --release high-quality" if "high-quality" in root_feat_folder else ""
        print(f"fetch them with: python3 misc/sync_experts.py --dataset {folder}{release} --data_dir {data_dir}")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 failure, 130 interrupted)."""
    args = parse_args(argv)
    try:
        if args.verify:
            return run_verify(args.config, args.data_dir)
        if "LSMDC" in args.dataset and not args.access_code:
            raise SyncError("LSMDC needs --access_code: request access to the MPII movie description dataset, "
                            "then ask the CE authors for the code")
        if EPIC_KITCHENS in args.dataset:
            sync_epic_annotations(args.data_dir, args.root_url, report=print)
        archives = [dataset for dataset in args.dataset if dataset != EPIC_KITCHENS]
        if not archives:
            return 0
        manifest = load_manifest(args.release, args.manifest)
        url_root = root_url(args.release, args.root_url)
        for dataset in archives:
            sync_dataset(dataset, args.release, url_root, args.data_dir, manifest, args.access_code,
                         args.allow_unverified, args.keep_archive, report=print)
    except (SyncError, SymlinkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
