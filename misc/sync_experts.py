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
  python3 misc/sync_experts.py --release challenge-release-1 --allow_unverified   (then challenge-release-2)
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
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import zlib
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import h5py
from repo_root import REPO  # the repository root, put on sys.path (misc/repo_root.py)

# isort: split
from data_loader.ranp.classes import check_relevance_block
from data_loader.released.datasets import (
    CHALLENGE_ROOT_FEAT_FOLDER,
    CHALLENGE_TEST_ROOT_FEAT_FOLDER,
    DATASET_NAMES,
    DEFAULT_ROOT_FEAT_FOLDER,
    feature_root,
)
from data_loader.released.datasets import RELEASES as DATASET_RELEASES
from data_loader.released.epic_kitchens import ANNOTATION_DIR as EPIC_ANNOTATION_DIR
from data_loader.released.epic_kitchens import DATASET as EPIC_KITCHENS
from data_loader.released.release_plan import config_plans, released_files
from data_loader.store.feature_store import STORE_DIR, StoreError
from data_loader.teachtext.teachers import teacher_name, teacher_path
from trainer import build  # noqa:F401  (fills the registries that configs are validated against)
from trainer.build import distil_options
from utils.atomic import SymlinkError, refuse_symlink, remove_path, write_text_atomic
from utils.config.load import load_config
from utils.download import DownloadError, download, file_digest
from utils.errors import ConfigError

MANIFEST_DIR = REPO / "misc" / "manifests"
DATASETS = ("MSRVTT", "MSVD", "DiDeMo", "activity-net", "LSMDC", "YouCook2", "QuerYD", "QuerYDSegments")
CHALLENGE_RELEASES = (CHALLENGE_ROOT_FEAT_FOLDER, CHALLENGE_TEST_ROOT_FEAT_FOLDER)
RELEASES = ("features-v2", "high-quality", *CHALLENGE_RELEASES)
CE_DATA_URL = "https://www.robots.ox.ac.uk/~vgg/research/collaborative-experts/data"
EPIC_ANNOTATIONS_URL = ("https://raw.githubusercontent.com/epic-kitchens/epic-kitchens-100-annotations/"
                        "ea8b40457a400c3fffa1c7f406ef3dc169cc2522/retrieval_annotations")
# The official test annotations the EPIC-KITCHENS-100 conversion reads, with their sha1.
EPIC_ANNOTATIONS = {"EPIC_100_retrieval_test.csv": "bafbf59f20e271920bd9b6f88d46eb7146495b58",
                    "EPIC_100_retrieval_test_sentence.csv": "64461759885aeb2b5cb444958bcf3bb9ee6cc8bc"}
EPIC_RELEASE_FOLDER = "ranp"  # the root_feat_folder of configs/epic-kitchens-100/
DEFAULT_ROOT_URLS = {
    "features-v2": CE_DATA_URL,
    "high-quality": "https://www.robots.ox.ac.uk/~vgg/research/teachtext/data-hq",
    **dict.fromkeys(CHALLENGE_RELEASES, CE_DATA_URL),
}
# The five datasets of the CVPR 2020 challenge, fetched when --dataset is not given (LSMDC, dropped
# from it, has a release-1 only).
CHALLENGE_DATASETS = ("MSRVTT", "MSVD", "DiDeMo", "activity-net", "YouCook2")
ROOT_URL_ENV = "CE_FEATURES_ROOT_URL"
MAX_LINK_HOPS = 40  # as the Linux kernel allows
SHA1 = re.compile(r"[0-9a-f]{40}")


class SyncError(DownloadError):
    """A failure the user can act on, described in one line."""


def archive_name(dataset: str, release: str) -> str:
    """Local archive file name: ``MSRVTT-experts.tar.gz``, ``high-quality-MSRVTT-experts.tar.gz``
    or ``challenge-release-1-MSRVTT-experts.tar.gz``."""
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
    with dataset_lock(folder / f"{archive}.lock", report):
        if marker_matches(marker, expected):  # another sync_experts.py did it while this one waited
            report(f"{dataset}: {archive} already verified and unpacked ({marker}); nothing to do")
            return
        _fetch_and_unpack(dataset, archive, folder, marker, expected, release, url_root, data_dir, access_code,
                          keep_archive, report)


@contextmanager
def dataset_lock(path: Path, report: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created for the time it is held): a second
    sync_experts.py of the same archive says so and waits, rather than sharing its partial download."""
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        refuse_symlink(path)
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                report(f"another sync_experts.py is fetching this archive (lock {path}); waiting for it to finish")
                waited = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # the holder removed this file as it finished: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then sees its file is gone
        handle.close()
        for folder in made:  # deepest first: a failed first download leaves no empty folders
            with suppress(OSError):
                folder.rmdir()


def _fetch_and_unpack(dataset: str, archive: str, folder: Path, marker: Path, expected: str | None, release: str,
                      url_root: str, data_dir: Path, access_code: str | None, keep_archive: bool,
                      report: Callable[[str], None]) -> None:
    """Download (or resume), check and unpack ``archive``, then write its marker; under the lock."""
    local = folder / archive
    url = f"{url_root}/{release}/{remote_name(archive, access_code if dataset == 'LSMDC' else None)}"
    if not local.exists():
        report(f"{dataset}: downloading {url}")
        partial = folder / f"{archive}.partial"
        download(url, partial, hint_404=" (check --root_url, --release and, for LSMDC, --access_code)")
        partial.replace(local)
    report(f"{dataset}: checking sha1 of {local}")
    actual = file_digest(local, "sha1")
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
        if target.is_file() and file_digest(target, "sha1") == expected:
            report(f"{EPIC_KITCHENS}: {target} already verified; nothing to do")
            continue
        partial = folder / f"{name}.partial"
        url = f"{url_root or EPIC_ANNOTATIONS_URL}/{name}"
        report(f"{EPIC_KITCHENS}: downloading {url}")
        download(url, partial)
        actual = file_digest(partial, "sha1")
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
    training and for its test run (``eval_settings``), as the conversion into the store reads them.
    In challenge mode the ``public_server_test`` list is in the second release folder
    (``challenge_test_root_feat_folder``), the raw captions and text features in both."""
    try:
        config = load_config(config_path)
        args = config["data_loader"]["args"]
        dataset = args["dataset_name"]
        if dataset not in DATASET_NAMES:
            raise SyncError(f"{config_path}: data_loader.args.dataset_name: {dataset!r} has no released "
                            f"features; expected one of: {', '.join(DATASET_NAMES)}")
        plans = config_plans(config, dataset)
        files = dict.fromkeys(path for plan in plans for path in released_files(plan))
    except (ConfigError, StoreError) as exc:
        raise SyncError(str(exc)) from None
    root_feat_folder = args.get("root_feat_folder", DEFAULT_ROOT_FEAT_FOLDER)
    folder = data_dir / DATASET_RELEASES[dataset].folder
    paths = [folder / root_feat_folder / relative for relative in files if relative != "public_server_test.txt"]
    if config.get("challenge_mode"):
        release = DATASET_RELEASES[plans[0].dataset]
        text = [p for plan in plans if plan.text_feat for p in release.text_files(plan.text_feat).paths]
        second = folder / args.get("challenge_test_root_feat_folder", CHALLENGE_TEST_ROOT_FEAT_FOLDER)
        if "public_server_test.txt" in files:
            paths += [second / relative for relative in ["public_server_test.txt", release.raw_captions, *text]]
    return DATASET_RELEASES[dataset].folder, root_feat_folder, list(dict.fromkeys(paths))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", choices=(*DATASETS, EPIC_KITCHENS), metavar="DATASET",
                        help=f"datasets to fetch, any of: {', '.join(DATASETS)}; or {EPIC_KITCHENS} "
                             "(its official test annotations only)")
    parser.add_argument("--release", default="features-v2", choices=RELEASES,
                        help="features-v2: the CE paper's features (default); high-quality: the TeachText ones; "
                             "challenge-release-1 / challenge-release-2: the CVPR 2020 challenge's (with no "
                             f"--dataset: {' '.join(CHALLENGE_DATASETS)})")
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
    if not args.verify and not args.dataset and args.release in CHALLENGE_RELEASES:
        args.dataset = list(CHALLENGE_DATASETS)
    if not args.verify and not args.dataset:
        parser.error("give --dataset DATASET [DATASET ...] (or --verify --config CONFIG)")
    return args


def added_files(config_path: Path, data_dir: Path) -> list[tuple[Path, str | None]]:
    """The files a config names beyond the release, each with what is wrong with it (None when
    it is fine): TeachText teacher pickles (``distil_params``; fine when the store holds the
    teacher already), caption masks, class annotations and relevance files (``data_loader.args``;
    a relevance file's values must be numbers in [0, 1])."""
    config = load_config(config_path)
    args = config["data_loader"]["args"]
    dataset = args["dataset_name"]
    root = feature_root(dataset, Path(data_dir) / DATASET_RELEASES[dataset].folder,
                        args.get("root_feat_folder", DEFAULT_ROOT_FEAT_FOLDER))
    store = Path(data_dir) / DATASET_RELEASES[dataset].folder / STORE_DIR
    found: list[tuple[Path, str | None]] = []
    distil = distil_options(config)
    for file in distil.teachers if distil else []:
        pickle_path = root / f"{distil.base_path}{file}"
        converted = teacher_path(store, teacher_name(distil.base_path, file))
        found.append((pickle_path, None if pickle_path.is_file() or converted.is_file() else "missing"))
    for path in ([root / config["caption_masks"]] if config.get("caption_masks") else []) + (
            [Path(args["class_annotations"])] if args.get("class_annotations") else []):
        found.append((path, None if path.is_file() else "missing"))
    for source in (args.get("relevance_files") or {}).values():
        found.append((Path(source), relevance_problem(Path(source))))
    return found


def relevance_problem(path: Path) -> str | None:
    """What is wrong with a relevance file (missing, unreadable, values outside [0, 1]), or None."""
    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            matrix = f.get("rel_mat")
            if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2:
                return "no 2-D dataset 'rel_mat'"
            step = max(1, (1 << 24) // max(matrix.shape[1], 1))
            for lo in range(0, matrix.shape[0], step):
                check_relevance_block(matrix[lo:lo + step], str(path), lo)
    except OSError as exc:
        return f"not a readable HDF5 file ({exc})"
    except StoreError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None


def run_verify(config: Path, data_dir: Path) -> int:
    """Print the presence of every released file ``config`` needs, and the state of the files it
    adds (teachers, caption masks, class annotations, relevance files); 1 if any is missing or bad."""
    folder, root_feat_folder, paths = needed_files(config, data_dir)
    missing = [path for path in paths if not path.exists()]
    for path in paths:
        print(f"{'MISSING' if path in missing else 'ok     '} {path}")
    try:
        added = added_files(config, data_dir)
    except (ConfigError, StoreError) as exc:
        raise SyncError(str(exc)) from None
    for path, problem in added:
        print(f"{'ok     ' if problem is None else 'MISSING' if problem == 'missing' else 'BAD    '} {path}"
              + ("" if problem in (None, "missing") else f": {problem}"))
    bad = [path for path, problem in added if problem is not None]
    print(f"{folder}: {len(paths) - len(missing)} of {len(paths)} files {config} needs present under {data_dir}"
          + (f"; {len(added) - len(bad)} of {len(added)} teacher, mask, class and relevance files ok" if added else ""))
    if bad:
        print("teacher, caption mask, class and relevance files are not in the release: fix or fetch them yourself")
    if missing:
        releases = [""]
        if "high-quality" in root_feat_folder:
            releases = [" --release high-quality"]
        elif root_feat_folder in CHALLENGE_RELEASES:
            releases = [f" --release {release}" for release in CHALLENGE_RELEASES]
        for release in releases:
            print(f"fetch them with: python3 misc/sync_experts.py --dataset {folder}{release} --data_dir {data_dir}")
    return 1 if missing or bad else 0


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
    except (DownloadError, SymlinkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
