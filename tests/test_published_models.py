"""Published models: the registry, the summary-log reader, fetching by name from a mirror on
127.0.0.1 (resume, sha256 record, tampering refused) and test.py printing the published numbers
beside its own, which equal those the summary log gives for the checkpoint's seed."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import REPO, reference_path
from published_server import http_server, range_server
from test_original_checkpoint_eval import direct_inputs

from model.metric import t2v_metrics, v2t_metrics
from report.published import (
    RegistryError,
    check_entry,
    comparison_table,
    for_experiment,
    load_registry,
    published_layout,
    url_roots,
    with_docs_table,
)
from report.results_table import RunResult
from report.site import read_run, write_run_index, write_site_index
from trainer.build import build_model
from trainer.checkpoints.original import load_original_checkpoint
from utils.config.load import load_config, with_eval_settings
from utils.metric_names import GMEAN_KEY
from utils.original.summary_log import SummaryLogError, read_summary_log
from utils.summary import count_trainable

NAME = "msrvtt-train-full-ce"
SUBDIR = "msrvtt-train-full-ce/074e6b24/seed-0/2020-01-07_15-24-30"
FIXED = "msrvtt-train-jsfusion-ce"
FIXED_SUBDIR = "msrvtt-train-jsfusion-ce/2b66fed2/seed-0/2020-01-07_15-30-39"
KEYS = ("R1", "R5", "R10", "R50", "MedR", "MeanR", GMEAN_KEY)


def test_registry_holds_every_published_entry_well_formed():
    models = load_registry()
    kinds = [model.url_root for model in models.values()]
    assert kinds.count("ce") == 157 and kinds.count("teachtext") == 25
    full = models[NAME]
    assert full.subdir == SUBDIR and full.params == 183_448_607
    assert full.t2v["geom"] == [22.9, 0.1] and full.t2v["MedR"] == [16.0, 0.0] and full.only_t2v
    assert models["querydsegments-train-full-ce"].seed_dir == "seed-1"
    assert models["querydsegments-train-full-ce"].summary_log == "summary-seed-1_seed-2_seed-3.json"
    plus = models["msrvtt-train-gpt2-xl-finetuned-adam"]
    assert plus.url_root == "teachtext" and plus.t2v["geom"] == [29.2, 0.2] and plus.t2v["MeanR"] == [69.4, 0.8]
    assert models["msrvtt-train-full-ce-hq"].group_id == "6becbb74"
    assert for_experiment(models, NAME) is full
    assert for_experiment(models, "msvd-train-gpt2-xl-finetuned-adam").name == "msvd-train-gpt2-xl-finetuned-adam"
    assert all((REPO / model.config).is_file() for model in models.values() if model.config is not None)


@pytest.mark.slow
def test_every_shipped_config_resolves_with_its_test_settings():
    for model in load_registry().values():
        if model.config is not None:
            with_eval_settings(load_config(REPO / model.config))


@pytest.mark.slow
def test_every_shipped_config_builds_the_published_parameter_count_or_lists_its_drift():
    entries = json.loads((REPO / "misc" / "published" / "models.json").read_text())["models"]
    for entry in entries:
        if entry["config"] is None or entry["params"] is None:
            continue
        with torch.device("meta"):
            count = count_trainable(build_model(load_config(REPO / entry["config"])))
        if count != entry["params"]:
            assert entry["params_drift"]["config_params"] == count, entry["name"]
            assert any("config drift" in note for note in entry["notes"]), entry["name"]


@pytest.mark.slow
def test_a_teachtext_config_reading_other_features_is_listed_as_drift():
    for model in load_registry().values():
        if model.url_root == "teachtext" and model.config is not None:
            folder = load_config(REPO / model.config)["data_loader"]["args"].get("root_feat_folder") or ""
            drift = any("config drift" in note and "high-quality" in note for note in model.notes)
            assert drift == ("high-quality" not in folder), model.name


@pytest.mark.parametrize("key, value, message", [
    ("url_root", "mirror", "url_root: expected one of ce, teachtext"),
    ("seed_dir", "0", "seed_dir: expected seed-<n>"),
    ("t2v", {"R1": [10.0]}, "t2v.R1: expected [mean, std]"),
    ("t2v", {"R2": [1.0, 0.1]}, "t2v.R2: unknown metric"),
    ("params", -3, "params: expected a positive integer"),
    ("only_t2v", False, "only_t2v: must be true exactly when v2t is null"),
    ("group_id", None, "group_id: expected a str"),
])
def test_a_malformed_entry_is_one_line_naming_its_key(key, value, message):
    entry = json.loads((REPO / "misc" / "published" / "models.json").read_text())["models"][0]
    entry[key] = value
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("(", r"\(")):
        check_entry(entry, "models[0]")


def summary_lines(seeds: dict[str, dict], stats: dict[str, dict[str, tuple[float, float]]] | None = None,
                  fixed: int | None = None) -> list[str]:
    """A summary log as the original writes it: each seed's info.log (seed line, two validation
    epochs, the test evaluation), then log_summary's statistics."""
    lines = []
    for seed, metrics in seeds.items():
        stamp = "2020-01-07 15:24:30,100"
        lines.append(f"{stamp} - train - INFO - Setting experiment random seed to {seed}")
        lines.append(f"{stamp} - train - INFO - Trainable parameters: 411731")
        for epoch in (1, 2):
            lines.append(f"{stamp} - trainer - INFO -     epoch          : {epoch}")
            for direction in ("t2v", "v2t"):
                for key in KEYS:
                    value = metrics[f"{direction}_metrics"][key] + (epoch - 2) * 3.5
                    lines.append(f"{stamp} - trainer - INFO -     val_{direction}_metrics_{key}: {value}")
        if fixed is None:
            lines.append(f"{stamp} - test - INFO - Running evaluation on cpu")
            for direction in ("t2v", "v2t"):
                for key in KEYS:
                    lines.append(f"{stamp} - test - INFO -  test_{direction}_metrics_{key}: "
                                 f"{metrics[f'{direction}_metrics'][key]}")
    for direction in ("t2v", "v2t"):
        lines += ["INFO:summary:", "INFO:summary:" + "-" * 52,
                  f"INFO:summary:[{direction}] loaded log file with {len(lines)} lines....", "INFO:summary:" + "-" * 52]
        if fixed is not None:
            lines.append(f"INFO:summary:Reporting stats with fixed training length: {fixed}")
        for key, (mean, std) in (stats or {}).get(direction, {}).items():
            lines.append(f"INFO:summary:{key}: {mean:.1f}, {std:.1f}")
    return lines


def shifted(metrics: dict, by: float) -> dict:
    return {direction: {key: value + by for key, value in values.items()} for direction, values in metrics.items()}


BASE = {f"{d}_metrics": {"R1": 10.5, "R5": 30.25, "R10": 41.0, "R50": 70.0, "MedR": 16.0, "MeanR": 80.5,
                         GMEAN_KEY: 23.1} for d in ("t2v", "v2t")}


def test_summary_log_gives_each_seed_its_first_test_entry_and_the_statistics(tmp_path):
    path = tmp_path / "summary-seed-0_seed-1_seed-2.json"
    stats = {"t2v": {"R1": (10.0, 0.1), "MeanR": (81.8, 0.2)}}
    seeds = {"0": BASE, "1": shifted(BASE, 1.0), "2": shifted(BASE, 2.0)}
    path.write_text("\n".join(summary_lines(seeds, stats)) + "\n")
    log = read_summary_log(path)
    assert log.seeds == ["0", "1", "2"] and log.fixed_epochs is None
    assert log.first_seed == BASE and log.per_seed["2"] == shifted(BASE, 2.0)
    assert log.summary["t2v"] == {"R1": (10.0, 0.1), "MeanR": (81.8, 0.2)}


def test_summary_log_of_a_fixed_length_run_reads_the_last_epochs_validation(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("\n".join(summary_lines({"0": BASE, "1": BASE}, fixed=2)) + "\n")
    log = read_summary_log(path)
    assert log.fixed_epochs == 2 and log.first_seed == BASE


def test_comparison_table_puts_the_published_row_and_difference_under_ours():
    runs = [RunResult(NAME, seed, {"seed": seed}, 183_448_607,
                      {"t2v_metrics": {"R1": 10.0 + seed, GMEAN_KEY: 22.0 + seed}, "v2t_metrics": {"R1": 9.0}})
            for seed in (0, 1)]
    table = comparison_table(runs).set_index("Config")
    assert table.loc[NAME, "t2v R@1"] == "10.5(0.7)"
    assert table.loc[f"published: {NAME}", "t2v R@1"] == "10.0(0.1)"
    assert table.loc["difference (ours − published)", "t2v R@1"] == "+0.5"
    assert table.loc["difference (ours − published)", "t2v Geom"] == "-0.4"
    assert table.loc[f"published: {NAME}", "v2t R@1"] == "–"


def test_published_layout_is_recognised(tmp_path):
    checkpoint = tmp_path / "data" / "models" / SUBDIR / "trained_model.pth"
    assert published_layout(checkpoint) == ((tmp_path / "data").resolve(), SUBDIR)
    assert published_layout(tmp_path / "models" / "exp" / "2020-01-01_00-00-00" / "trained_model.pth") is None


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> dict:
    """A release of 30 test videos, and a folder laid out as the original server (``data/models``,
    ``data/log``) holding the reference original checkpoint and config under msrvtt-train-full-ce,
    with a summary log whose seed 0 numbers are those of a direct forward of the checkpoint."""
    work = tmp_path_factory.mktemp("published")
    config_path = reference_path("checkpoint", "ce_small_config.json")
    checkpoint = reference_path("checkpoint", "ce_small_checkpoint-epoch3.pth")
    data_dir = work / "MSRVTT"
    made = run("misc/make_release_fixture.py", "--config", str(config_path), "--out", str(data_dir),
               "--scale", "0.01", "--text_tokens", "12", timeout=120)
    assert made.returncode == 0, made.stderr
    config = with_eval_settings(load_config(config_path, [f"data_loader.args.data_dir={data_dir}"]))
    experts, ind, text, mask, query_masks = direct_inputs({"data_dir": data_dir}, config)
    model = build_model(config)
    model.load_state_dict(load_original_checkpoint(checkpoint)["state_dict"], strict=True)
    with torch.no_grad():
        sims = model.eval()(experts=experts, ind=ind, text=text, text_token_mask=mask)["cross_view_conf_matrix"]
    seed0 = {"t2v_metrics": t2v_metrics(sims.numpy(), query_masks=query_masks),
             "v2t_metrics": v2t_metrics(sims.numpy(), query_masks=query_masks)}
    site = work / "site"
    models, logs = site / "data" / "models" / SUBDIR, site / "data" / "log" / SUBDIR
    models.mkdir(parents=True)
    logs.mkdir(parents=True)
    shutil.copyfile(config_path, models / "config.json")
    shutil.copyfile(checkpoint, models / "trained_model.pth")
    seeds = {"0": seed0, "1": shifted(seed0, -1.0), "2": shifted(seed0, -2.0)}
    (logs / "summary-seed-0_seed-1_seed-2.json").write_text("\n".join(summary_lines(seeds)) + "\n")
    # a fixed-length run (1k-A): eval_settings false, so it is evaluated on its own split, which
    # test.py --split val evaluates with the plain original config
    val_run = work / "val" / "checkpoint.pth"
    val_run.parent.mkdir()
    shutil.copyfile(checkpoint, val_run)
    tested = run("test.py", "--config", str(config_path), "--resume", str(val_run), "--split", "val",
                 "--set", f"data_loader.args.data_dir={data_dir}")
    assert tested.returncode == 0, tested.stderr
    val0 = json.loads((val_run.parent / "metrics-val.json").read_text())
    models, logs = site / "data" / "models" / FIXED_SUBDIR, site / "data" / "log" / FIXED_SUBDIR
    models.mkdir(parents=True)
    logs.mkdir(parents=True)
    fixed_config = json.loads(config_path.read_text())
    fixed_config["eval_settings"] = False
    (models / "config.json").write_text(json.dumps(fixed_config, indent=4))
    shutil.copyfile(checkpoint, models / "trained_model.pth")
    val_metrics = {d: {k: val0[d][k] for k in KEYS} for d in ("t2v_metrics", "v2t_metrics")}
    seeds = {"0": val_metrics, "1": shifted(val_metrics, 1.0), "2": shifted(val_metrics, 0.5)}
    (logs / "summary-seed-0_seed-1_seed-2.json").write_text("\n".join(summary_lines(seeds, fixed=2)) + "\n")
    return {"site": site, "data_dir": data_dir, "seed0": seed0, "val0": val0}


@pytest.mark.slow
def test_fetch_by_name_from_a_mirror_then_test_prints_the_published_numbers(mirror, tmp_path):
    save = tmp_path / "data"
    with http_server(mirror["site"]) as url:
        fetched = run("misc/sync_models.py", "--experiment", NAME, "--root_url", url, "--save_dir", str(save))
    assert fetched.returncode == 0, fetched.stderr
    checkpoint = save / "models" / SUBDIR / "trained_model.pth"
    record = json.loads((checkpoint.parent / "published.json").read_text())
    assert record["entry"]["name"] == NAME and len(record["files"]) == 3
    assert record["files"][f"models/{SUBDIR}/trained_model.pth"]["url"] == f"{url}/data/models/{SUBDIR}/trained_model.pth"
    tested = run("test.py", "--resume", str(checkpoint), "--set", f"data_loader.args.data_dir={mirror['data_dir']}")
    assert tested.returncode == 0, tested.stderr
    written = json.loads((checkpoint.parent / "metrics.json").read_text())
    published = written["published"]
    assert published["model"] == NAME and published["seed"] == "0"
    for direction in ("t2v_metrics", "v2t_metrics"):
        for key, value in mirror["seed0"][direction].items():
            assert math.isclose(written[direction][key], value, rel_tol=1e-6, abs_tol=1e-6), (direction, key)
            assert published["seed_metrics"][direction][key] == pytest.approx(value)
    assert published["paper"]["t2v_metrics"][GMEAN_KEY] == [22.9, 0.1]
    out = tested.stdout + tested.stderr
    r1 = f"{mirror['seed0']['t2v_metrics']['R1']:.2f}"
    assert f"published ({NAME}):" in out and "seed 0 (log)" in out and "22.9(0.1)" in out and r1 in out
    assert "paper: mean (std) over three seeds" in out and "reproduces the log of seed 0" in out
    log_dir = save / "log" / SUBDIR
    assert (log_dir / "summary-seed-0_seed-1_seed-2.json").is_file() and (log_dir / "info.log").is_file()


@pytest.mark.slow
def test_a_fixed_length_model_with_eval_settings_false_is_evaluated_on_its_own_split(mirror, tmp_path):
    save = tmp_path / "data"
    with http_server(mirror["site"] / "data") as url:
        fetched = run("misc/sync_models.py", "--experiment", FIXED, "--save_dir", str(save), "--root_url", url)
    assert fetched.returncode == 0, fetched.stderr
    checkpoint = save / "models" / FIXED_SUBDIR / "trained_model.pth"
    tested = run("test.py", "--resume", str(checkpoint), "--set", f"data_loader.args.data_dir={mirror['data_dir']}")
    assert tested.returncode == 0, tested.stderr
    written = json.loads((checkpoint.parent / "metrics.json").read_text())
    assert written["split"] == mirror["val0"]["split"] and written["num_queries"] == mirror["val0"]["num_queries"]
    for direction in ("t2v_metrics", "v2t_metrics"):
        for key in KEYS:
            assert written[direction][key] == pytest.approx(mirror["val0"][direction][key], abs=1e-6)
            assert written["published"]["seed_metrics"][direction][key] == pytest.approx(written[direction][key])
    assert written["published"]["paper"]["t2v_metrics"]["R1"] == [20.9, 1.2]
    assert "reproduces the log of seed 0" in tested.stdout + tested.stderr


@pytest.mark.slow
def test_an_interrupted_transfer_resumes_and_a_tampered_download_is_refused(mirror, tmp_path):
    save = tmp_path / "data"
    served = mirror["site"] / "data"
    with range_server(served) as server:
        path = f"/models/{SUBDIR}/trained_model.pth"
        server.cut[path] = 100_000
        args = ("misc/sync_models.py", "--experiment", NAME, "--root_url", server.url, "--save_dir", str(save))
        first = run(*args)
        assert first.returncode == 1 and first.stderr.count("\n") == 1 and "re-run" in first.stderr
        partial = save / "models" / SUBDIR / "trained_model.pth.partial"
        assert partial.stat().st_size == 100_000
        second = run(*args)
        assert second.returncode == 0, second.stderr
        assert (path, "bytes=100000-") in server.seen
        local = save / "models" / SUBDIR / "trained_model.pth"
        assert local.read_bytes() == (served / path.lstrip("/")).read_bytes()
        assert "verified" in run(*args).stdout
    tampered = tmp_path / "tampered"
    shutil.copytree(served, tampered)
    with (tampered / path.lstrip("/")).open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x00" * 16)
    before = local.read_bytes()
    with http_server(tampered) as url:
        refused = run("misc/sync_models.py", "--experiment", NAME, "--root_url", url, "--save_dir", str(save),
                      "--force")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "differs from the" in refused.stderr and "refused" in refused.stderr
    assert local.read_bytes() == before and not partial.exists()


@pytest.mark.slow
def test_a_missing_teachtext_model_names_the_url_and_the_other_root(tmp_path):
    with http_server(tmp_path) as url:
        missing = run("misc/sync_models.py", "--experiment", "msrvtt-train-gpt2-xl-finetuned-adam",
                      "--root_url", url + "/data", "--save_dir", str(tmp_path / "data"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert f"{url}/data/models/msrvtt-train-gpt2-xl-finetuned-adam/244af891/seed-0/" in missing.stderr
    assert "HTTP 404" in missing.stderr and "teachtext/data-hq" in missing.stderr


def test_the_docs_table_is_the_registrys():
    page = (REPO / "docs" / "published-models.md").read_text()
    assert with_docs_table(page, load_registry()) == page, "run: python3 misc/sync_models.py --write_docs " \
                                                           "docs/published-models.md"


def test_site_groups_an_experiments_runs_beside_the_published_row(tmp_path):
    for seed, run_id in ((0, "2026-01-01_00-00-00"), (1, "2026-01-01_00-00-01")):
        models = tmp_path / "models" / NAME / run_id
        models.mkdir(parents=True)
        (models / "config.json").write_text(json.dumps({"seed": seed}))
        metrics = {"t2v_metrics": {"R1": 10.0 + seed, GMEAN_KEY: 22.0}, "v2t_metrics": {"R1": 9.0}, "params": 5}
        if seed == 0:
            metrics["published"] = {"model": NAME, "seed": "0", "seed_metrics": {"t2v_metrics": {"R1": 10.25}},
                                    "paper": load_registry()[NAME].paper(), "summary_log": "log"}
        (models / "metrics.json").write_text(json.dumps(metrics))
    index = write_site_index(tmp_path).read_text()
    experiments = index.split("<h2>Experiments</h2>")[1]
    assert f"<td>{NAME}</td>" in experiments and "10.5(0.7)" in experiments
    assert f"published: {NAME}" in experiments and "+0.5" in experiments
    run = read_run(tmp_path / "models" / NAME / "2026-01-01_00-00-00", tmp_path / "web" / "run")
    page = write_run_index(run).read_text()
    assert "published: seed 0 (log)" in page and "10.25" in page and "published: paper mean of 3 seeds" in page


def test_urls_are_joined_as_strings_with_the_mirror_override(monkeypatch):
    import sync_models

    models, defaults = load_registry(), url_roots()
    plus = models["msrvtt-train-gpt2-xl-finetuned-adam"]
    monkeypatch.delenv(sync_models.ROOT_URL_ENV, raising=False)
    assert sync_models.root_url(plus, None, defaults) == "http://www.robots.ox.ac.uk/~vgg/research/teachtext/data-hq"
    assert sync_models.root_url(models[NAME], None, defaults) == \
        "http://www.robots.ox.ac.uk/~vgg/research/collaborative-experts/data"
    monkeypatch.setenv(sync_models.ROOT_URL_ENV, "http://127.0.0.1:9/mirror/")
    assert sync_models.root_url(plus, None, defaults) == "http://127.0.0.1:9/mirror"
    assert sync_models.root_url(plus, "http://127.0.0.1:8", defaults) == "http://127.0.0.1:8"
    assert list(models[NAME].files()) == [f"models/{SUBDIR}/config.json", f"models/{SUBDIR}/trained_model.pth",
                                          f"log/{SUBDIR}/summary-seed-0_seed-1_seed-2.json"]
    assert "teachtext/data-hq" in sync_models.not_found_hint(plus, defaults, mirror=False)


def test_a_summary_log_without_metrics_is_one_line_naming_it(tmp_path):
    path = tmp_path / "summary-seed-0_seed-1_seed-2.json"
    path.write_text("<html>404 Not Found</html>\n")
    with pytest.raises(SummaryLogError, match=r"summary-seed-0_seed-1_seed-2\.json: no 'test_t2v_metrics_<key>"):
        read_summary_log(path)
    path.write_text("x - test - INFO -  test_t2v_metrics_R1: abc\n")
    with pytest.raises(SummaryLogError, match="expected a number after test_t2v_metrics_R1:"):
        read_summary_log(path)
