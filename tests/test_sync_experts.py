"""misc/sync_experts.py against a real HTTP server on 127.0.0.1 serving a small release archive."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from utils import download

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_experts", REPO / "misc" / "sync_experts.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)

ARCHIVE = "MSRVTT-experts.tar.gz"
FEATURE = "data/MSRVTT/structured-symlinks/aggregated_audio_feats/Audio_MSRVTT_new.pickle"
CAPTIONS = "data/MSRVTT/structured-symlinks/raw-captions.pkl"


def make_archive(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | list | None = None) -> bytes:
    """A tar.gz of regular files ``members`` (name -> bytes), then entries ``links`` (name -> (tar type,
    link target), a dict or a list of such pairs, in archive order) without content."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links.items() if isinstance(links, dict) else links or []):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``, honouring Range unless ``server.ignore_range``; when
    ``server.cut_after`` is set, the next body stops at that byte and the connection closes;
    ``server.stall`` seconds of silence precede dropping the request unanswered."""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        server = self.server
        server.seen.append((self.path, self.headers.get("Range")))
        if server.stall:
            time.sleep(server.stall)
            self.close_connection = True
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range") and not server.ignore_range:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(body[start:server.cut_after])
            server.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 (free port) whose archives live under ``<root>/<release>/``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.seen, httpd.cut_after, httpd.ignore_range, httpd.stall = {}, [], None, False, 0.0
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.root = f"http://127.0.0.1:{httpd.server_address[1]}/ce"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def publish(server, body: bytes, tmp_path: Path, sha1: str | None = None) -> Path:
    """Serve ``body`` as the MSRVTT features-v2 archive; returns a manifest with ``sha1`` (default: its own)."""
    server.files[f"/ce/features-v2/{ARCHIVE}"] = body
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({ARCHIVE: sha1 or hashlib.sha1(body).hexdigest()}))
    return manifest


def fetch(server, tmp_path: Path, manifest: Path, *extra: str) -> int:
    """Run the CLI in-process for MSRVTT against ``server``, unpacking under ``tmp_path/data``."""
    return sync.main(["--dataset", "MSRVTT", "--root_url", server.root, "--manifest", str(manifest),
                      "--data_dir", str(tmp_path / "data"), *extra])


def files_under(folder: Path) -> list[str]:
    """Relative paths of the files (not folders) below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


@pytest.mark.slow
def test_download_verify_extract_then_idempotent(server, tmp_path, capsys):
    feature = os.urandom(4096)
    manifest = publish(server, make_archive({FEATURE: feature, CAPTIONS: b"captions"}), tmp_path)
    assert fetch(server, tmp_path, manifest) == 0
    ds = tmp_path / "data" / "MSRVTT"
    assert (ds / "structured-symlinks/aggregated_audio_feats/Audio_MSRVTT_new.pickle").read_bytes() == feature
    assert (ds / "structured-symlinks/raw-captions.pkl").read_bytes() == b"captions"
    marker = json.loads((ds / f"{ARCHIVE}.verified").read_text())
    assert marker["sha1"] == json.loads(manifest.read_text())[ARCHIVE] and marker["sha1_checked"]
    assert not (ds / ARCHIVE).exists() and not list(ds.glob("*.partial")) and not list(ds.glob(".*"))
    requests_before = len(server.seen)
    assert fetch(server, tmp_path, manifest) == 0
    assert len(server.seen) == requests_before
    assert "already verified" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_after_cut_connection(server, tmp_path, capsys):
    body = make_archive({FEATURE: os.urandom(200_000)})
    manifest = publish(server, body, tmp_path)
    server.cut_after = 70_000
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "re-run" in err and "\n" not in err
    partial = tmp_path / "data" / "MSRVTT" / f"{ARCHIVE}.partial"
    assert 0 < partial.stat().st_size <= 70_000
    kept = partial.stat().st_size
    assert fetch(server, tmp_path, manifest) == 0
    assert server.seen[-1][1] == f"bytes={kept}-"
    assert (tmp_path / "data/MSRVTT/structured-symlinks/aggregated_audio_feats/Audio_MSRVTT_new.pickle").exists()


@pytest.mark.slow
def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    body = make_archive({FEATURE: os.urandom(1000)})
    manifest = publish(server, body, tmp_path)
    partial = tmp_path / "data" / "MSRVTT" / f"{ARCHIVE}.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"stale bytes from another file")
    server.ignore_range = True
    assert fetch(server, tmp_path, manifest, "--keep_archive") == 0
    assert server.seen[-1][1] == f"bytes={len(b'stale bytes from another file')}-"
    assert (partial.parent / ARCHIVE).read_bytes() == body


@pytest.mark.slow
def test_interrupted_unpack_is_redone_on_the_next_run(server, tmp_path, monkeypatch):
    manifest = publish(server, make_archive({FEATURE: b"f", CAPTIONS: b"c"}), tmp_path)

    def interrupt(src: Path, dst: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sync, "merge_into", interrupt)
    assert fetch(server, tmp_path, manifest) == 130
    ds = tmp_path / "data" / "MSRVTT"
    assert files_under(ds) == [ARCHIVE]
    monkeypatch.undo()
    requests_before = len(server.seen)
    assert fetch(server, tmp_path, manifest) == 0
    assert len(server.seen) == requests_before  # the complete archive was re-checked, not re-fetched
    assert (ds / f"{ARCHIVE}.verified").exists() and (ds / "structured-symlinks/raw-captions.pkl").exists()


@pytest.mark.slow
def test_checksum_mismatch_extracts_nothing(server, tmp_path, capsys):
    manifest = publish(server, make_archive({FEATURE: b"x"}), tmp_path, sha1="0" * 40)
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err.strip()
    assert "sha1" in err and "does not match" in err and "re-run" in err and "\n" not in err
    assert files_under(tmp_path / "data") == []


@pytest.mark.slow
@pytest.mark.parametrize("members, links", [
    ({"data/MSRVTT/../../evil": b"x"}, {}),
    ({"/tmp/absolute-evil": b"x"}, {}),
    ({}, {"data/MSRVTT/structured-symlinks/etc": (tarfile.SYMTYPE, "/etc")}),
    ({}, {"data/MSRVTT/structured-symlinks/up": (tarfile.SYMTYPE, "../../../outside")}),
    ({}, {"data/MSRVTT/structured-symlinks/passwd": (tarfile.LNKTYPE, "/etc/passwd")}),
    ({"data/MSVD/other-dataset.pkl": b"x"}, {}),
])
def test_unsafe_members_are_refused(server, tmp_path, capsys, members, links):
    manifest = publish(server, make_archive({CAPTIONS: b"ok", **members}, links), tmp_path)
    assert fetch(server, tmp_path, manifest) == 1
    assert "refused to unpack" in capsys.readouterr().err
    assert files_under(tmp_path / "data") == [f"MSRVTT/{ARCHIVE}"]
    assert not (tmp_path / "evil").exists() and not Path("/tmp/absolute-evil").exists()


@pytest.mark.slow
def test_http_404_is_one_line_and_leaves_nothing(server, tmp_path, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({ARCHIVE: "0" * 40}))
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 404" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_connection_refused_is_one_line(tmp_path, capsys):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({ARCHIVE: "0" * 40}))
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = sync.main(["--dataset", "MSRVTT", "--root_url", f"http://127.0.0.1:{port}", "--manifest", str(manifest),
                      "--data_dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot connect" in err


@pytest.mark.slow
def test_silent_server_times_out_in_one_line(server, tmp_path, monkeypatch, capsys):
    manifest = publish(server, b"never sent", tmp_path)
    monkeypatch.setattr(download, "TIMEOUT", (2, 0.2))
    server.stall = 0.6
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not answer in time" in err
    assert not (tmp_path / "data").exists()


def test_archive_names_urls_and_unverifiable(tmp_path, monkeypatch, capsys):
    assert sync.archive_name("MSRVTT", "high-quality") == "high-quality-MSRVTT-experts.tar.gz"
    code_hash = hashlib.sha256(b"secret").hexdigest()[:10]
    assert sync.remote_name("LSMDC-experts.tar.gz", "secret") == f"{code_hash}-LSMDC-experts.tar.gz"
    monkeypatch.setenv("CE_FEATURES_ROOT_URL", "http://127.0.0.1:1/mirror/")
    assert sync.root_url("features-v2", None) == "http://127.0.0.1:1/mirror"
    assert sync.root_url("features-v2", "http://127.0.0.1:2") == "http://127.0.0.1:2"
    assert sync.main(["--dataset", "LSMDC", "--data_dir", str(tmp_path)]) == 1
    assert "--access_code" in capsys.readouterr().err
    assert sync.main(["--dataset", "YouCook2", "--data_dir", str(tmp_path)]) == 1
    assert "--allow_unverified" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_verify_lists_only_the_files_the_config_needs(tmp_path, capsys):
    config = REPO / "configs" / "msvd" / "train-full-ce-only-scene.json"  # one expert: scene
    data = tmp_path / "data"
    args = ["--verify", "--config", str(config), "--data_dir", str(data)]
    assert sync.main(args) == 1
    listed = [Path(line.split(maxsplit=1)[1]) for line in capsys.readouterr().out.splitlines()
              if line.startswith("MISSING ")]
    archive = {data / entry.removeprefix("data/")
               for entry in (REPO / "misc/datasets/msvd/tar_include.txt").read_text().split()}
    assert set(listed) < archive
    experts = [p for p in listed if p.parent.name.startswith("aggregated_") and p.parent.name != "aggregated_text_feats"]
    assert [p.name for p in experts] == ["densenet161-avg.pickle"]
    for path in listed[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert sync.main(args) == 1
    out = capsys.readouterr().out
    assert f"MISSING {listed[0]}" in out and f"{len(listed) - 1} of {len(listed)} files" in out
    listed[0].parent.mkdir(parents=True, exist_ok=True)
    listed[0].touch()
    assert sync.main(args) == 0
    capsys.readouterr()
    assert sync.main(["--verify", "--config", str(REPO / "configs" / "synthetic" / "train-ce.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'Synthetic' has no released features" in err



DIR, SYM = tarfile.DIRTYPE, tarfile.SYMTYPE
# Each archive passes a textual check of its link targets, yet once its links are followed as the
# filesystem follows them, something lands outside data/MSRVTT/.
ESCAPING_ARCHIVES = {
    "alias chain onto the marker's temporary file": {
        "data/MSRVTT/z": (DIR, ""),
        "data/MSRVTT/a/b/c": (SYM, "../../z"),
        "data/MSRVTT/a/b/c/w": (SYM, "../../../train.py"),
        f"data/MSRVTT/{ARCHIVE}.verified.tmp": (SYM, "a/b/c/w"),
    },
    "store folder through an alias chain": {
        "data/MSRVTT/z": (DIR, ""),
        "data/MSRVTT/a/b/c": (SYM, "../../z"),
        "data/MSRVTT/a/b/c/w": (SYM, "../../../misc"),
        "data/MSRVTT/store": (SYM, "a/b/c/w"),
    },
    "store folder through a link that comes later in the archive": {
        "data/MSRVTT/store": (SYM, "a/b/c/../../../misc"),
        "data/MSRVTT/z": (DIR, ""),
        "data/MSRVTT/a/b/c": (SYM, "../../z"),
    },
}


def checkout_copy(tmp_path: Path) -> Path:
    """A stand-in checkout under ``tmp_path``: a copy of train.py and a misc/ folder beside data/."""
    (tmp_path / "misc").mkdir()
    (tmp_path / "train.py").write_bytes((REPO / "train.py").read_bytes())
    return tmp_path / "train.py"


@pytest.mark.slow
@pytest.mark.parametrize("links", ESCAPING_ARCHIVES.values(), ids=ESCAPING_ARCHIVES.keys())
def test_links_resolving_outside_the_dataset_are_refused(server, tmp_path, capsys, links):
    train_py = checkout_copy(tmp_path)
    before = train_py.read_bytes()
    manifest = publish(server, make_archive({CAPTIONS: b"ok"}, links), tmp_path)
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused to unpack" in err
    assert train_py.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == \
        ["data", "manifest.json", "misc", "train.py"]
    assert files_under(tmp_path / "data") == [f"MSRVTT/{ARCHIVE}"] and list((tmp_path / "misc").iterdir()) == []


@pytest.mark.slow
def test_links_already_on_disk_are_followed_when_checking(server, tmp_path, capsys):
    train_py = checkout_copy(tmp_path)
    ds = tmp_path / "data" / "MSRVTT"
    ds.mkdir(parents=True)
    (ds / "z").mkdir()
    (ds / "a" / "b").mkdir(parents=True)
    (ds / "a" / "b" / "c").symlink_to("../../z")  # harmless on its own: it points inside
    manifest = publish(server, make_archive({CAPTIONS: b"ok"}, {"data/MSRVTT/store": (SYM, "a/b/c/../../../misc")}),
                       tmp_path)
    assert fetch(server, tmp_path, manifest) == 1
    assert "outside data/MSRVTT/" in capsys.readouterr().err
    assert not (ds / "store").is_symlink() and list((tmp_path / "misc").iterdir()) == []
    assert train_py.read_bytes() == (REPO / "train.py").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("links", [
    {"data/MSRVTT/l": (SYM, "z"), "data/MSRVTT/l/f": (tarfile.REGTYPE, "")},
    [("data/MSRVTT/m", (SYM, "structured-symlinks/raw-captions.pkl")), ("data/MSRVTT/m", (tarfile.REGTYPE, ""))],
    [("data/MSRVTT/z", (DIR, "")), ("data/MSRVTT/z", (SYM, "structured-symlinks"))],
    {"data/MSRVTT/h": (tarfile.LNKTYPE, "data/MSRVTT/missing")},
    {f"data/MSRVTT/{ARCHIVE}.verified": (SYM, "structured-symlinks/raw-captions.pkl")},
])
def test_members_through_or_over_links_and_dangling_hard_links_are_refused(server, tmp_path, capsys, links):
    manifest = publish(server, make_archive({CAPTIONS: b"ok"}, links), tmp_path)
    assert fetch(server, tmp_path, manifest) == 1
    assert "refused to unpack" in capsys.readouterr().err
    assert files_under(tmp_path / "data") == [f"MSRVTT/{ARCHIVE}"]


@pytest.mark.slow
def test_links_that_stay_inside_are_unpacked(server, tmp_path):
    links = {"data/MSRVTT/alias": (SYM, "structured-symlinks/raw-captions.pkl"),
             "data/MSRVTT/copy": (tarfile.LNKTYPE, CAPTIONS),
             "data/MSRVTT/features": (SYM, "structured-symlinks")}
    manifest = publish(server, make_archive({CAPTIONS: b"captions"}, links), tmp_path)
    assert fetch(server, tmp_path, manifest) == 0
    ds = tmp_path / "data" / "MSRVTT"
    assert (ds / "alias").read_bytes() == (ds / "copy").read_bytes() == b"captions"
    assert (ds / "features" / "raw-captions.pkl").read_bytes() == b"captions"


@pytest.mark.slow
def test_marker_is_never_written_through_a_link_on_disk(server, tmp_path, capsys):
    train_py = checkout_copy(tmp_path)
    ds = tmp_path / "data" / "MSRVTT"
    ds.mkdir(parents=True)
    (ds / f"{ARCHIVE}.verified").symlink_to("../../train.py")
    manifest = publish(server, make_archive({CAPTIONS: b"ok"}), tmp_path)
    assert fetch(server, tmp_path, manifest) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symbolic link" in err and f"{ARCHIVE}.verified" in err
    assert train_py.read_bytes() == (REPO / "train.py").read_bytes()


@pytest.mark.slow
def test_unverified_archive_that_cannot_be_unpacked_names_the_file_to_delete(server, tmp_path, capsys):
    archive = "YouCook2-experts.tar.gz"  # no published sha1
    body = make_archive({"data/YouCook2/raw-captions.pkl": os.urandom(50_000)})
    server.files[f"/ce/features-v2/{archive}"] = body
    local = tmp_path / "data" / "YouCook2" / archive
    local.parent.mkdir(parents=True)
    local.write_bytes(body[: len(body) // 2])  # an earlier download that ended early
    args = ["--dataset", "YouCook2", "--root_url", server.root, "--data_dir", str(tmp_path / "data"),
            "--allow_unverified"]
    for _ in range(2):
        assert sync.main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot unpack" in err and f"delete {local} and re-run" in err
    assert local.read_bytes() == body[: len(body) // 2]
    local.unlink()
    assert sync.main(args) == 0


def test_epic_kitchens_annotations_are_fetched_and_checked(server, tmp_path, capsys):
    shipped = REPO / "misc" / "datasets" / "epic-kitchens-100"
    for name in sync.EPIC_ANNOTATIONS:
        server.files[f"/ek/{name}"] = (shipped / name).read_bytes()
    root = server.root.replace("/ce", "/ek")
    args = ["--dataset", "EPIC-KITCHENS-100", "--root_url", root, "--data_dir", str(tmp_path / "data")]
    assert sync.main(args) == 0
    folder = tmp_path / "data" / "EPIC-KITCHENS-100" / "ranp" / "annotation" / "epic100RET"
    assert files_under(folder) == sorted(sync.EPIC_ANNOTATIONS)
    assert (folder / "EPIC_100_retrieval_test.csv").read_bytes() == (shipped / "EPIC_100_retrieval_test.csv").read_bytes()
    requests_before = len(server.seen)
    assert sync.main(args) == 0 and len(server.seen) == requests_before
    (folder / "EPIC_100_retrieval_test.csv").unlink()
    server.files["/ek/EPIC_100_retrieval_test.csv"] = b"narration_id\n"
    assert sync.main(args) == 1
    assert "is not the published file's" in capsys.readouterr().err
    assert files_under(folder) == ["EPIC_100_retrieval_test_sentence.csv"]
