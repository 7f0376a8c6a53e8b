"""misc/benchmark.py's own cache: a run interrupted while writing the synthetic release leaves
nothing a later run takes for finished; the later run writes it again and converts it."""
from __future__ import annotations

import pytest
from conftest import REPO

import misc.benchmark as benchmark
from data_loader.store.feature_store import STORE_DIR
from utils.config.load import load_config

SCALE = 0.003


def config_for(folder):
    return load_config(REPO / "configs/msrvtt/train-full-ce.json", [f"data_loader.args.data_dir={folder}"])


@pytest.mark.slow
def test_interrupted_cache_is_written_again(tmp_path, monkeypatch):
    folder = benchmark.fixture_folder(tmp_path, SCALE)
    config = config_for(folder)
    write_fixture = benchmark.write_fixture

    def interrupted(out, *args):
        write_fixture(out, *args)
        raise KeyboardInterrupt  # after every file is written, before the marker

    monkeypatch.setattr(benchmark, "write_fixture", interrupted)
    with pytest.raises(KeyboardInterrupt):
        benchmark.ensure_fixture(config, folder, SCALE)
    assert not folder.exists() and list(tmp_path.iterdir()) == []  # the temporary folder is gone too

    folder.mkdir()  # as an interrupted run of an earlier version left it: files but no marker
    (folder / "raw-captions.pkl").write_bytes(b"truncated")
    monkeypatch.setattr(benchmark, "write_fixture", write_fixture)
    benchmark.ensure_fixture(config, folder, SCALE)
    assert (folder / "fixture.json").is_file() and not (folder / "raw-captions.pkl").exists()
    assert (folder / STORE_DIR / "index.h5").is_file()
    marker_time = (folder / "fixture.json").stat().st_mtime_ns
    benchmark.ensure_fixture(config, folder, SCALE)  # finished: reused as it is
    assert (folder / "fixture.json").stat().st_mtime_ns == marker_time
