"""HGR's data path: the generated dataset in HGR's MSR-VTT layout converts into the store, the
loader serves role graphs and HGR-sampled frames, role graphs import into an existing store,
and an HGR model trains on it through the project's trainer."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, chance_geometric_mean, load_script, run

from base.role_graph_text import RoleGraphText
from data_loader.generated.hgr_layout import ANNOTATION, VERBS, generate_hgr_layout
from data_loader.generated.role_graphs import template_role_graph, vocabulary_of
from data_loader.hgr.import_graphs import add_role_graphs
from data_loader.hgr.role_graphs import ROLE_IDS
from data_loader.ranp.classes import read_captions
from data_loader.released.hgr_msrvtt import convert_hgr_msrvtt
from model.hgr.checkpoint import to_original
from model.ranp.metrics import ndcg_and_map
from trainer.build import build_data, prepare_data
from trainer.checkpoints.safe_load import safe_load
from utils.config.load import load_config
from utils.errors import ConfigError, StoreError

train_cli = load_script("train")
test_cli = load_script("test")
CONFIG = REPO / "configs" / "synthetic" / "train-hgr.json"
SIZES = {"trn": 160, "val": 40, "tst": 60}


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return generate_hgr_layout(tmp_path_factory.mktemp("hgr") / "ranp", seed=0, sizes=SIZES)


def hgr_config(data_dir, *extra):
    return load_config(CONFIG, [f"data_loader.args.data_dir={json.dumps(str(data_dir))}",
                                "data_loader.args.dataset_name=\"MSRVTT-HGR\"", *extra])


@pytest.mark.slow
def test_the_layout_converts_and_the_loader_serves_hgr_inputs(layout):
    config = hgr_config(layout.parent, "data_loader.args.batch_size=16")
    prepare_data(config)
    data = build_data(config)
    batch = next(data.train_batches(torch.Generator().manual_seed(0), relevance=True))
    assert isinstance(batch.text, RoleGraphText) and batch.text.shape == (16, 1)
    assert batch.experts["resnet152"].shape == (16, 20, 64) and batch.relevance.shape == (16, 16)
    counts = batch.ind["resnet152"]
    assert counts.min() >= 8 and counts.max() == 20  # 8-30 frames per video, at most 20 kept
    words = data.store.raw_captions[int(batch.caption_rows[0, 0])].split()
    assert int(batch.text.sent_lens[0, 0]) == len(words)
    verb_at = int(batch.text.verb_masks[0, 0, 0].nonzero())
    assert words[verb_at] in VERBS and int(batch.text.node_roles[0, 0, 0]) == ROLE_IDS["V"]
    eval_set = data.eval_set()
    text = data.text_inputs(eval_set.caption_rows)
    assert text.shape == eval_set.caption_rows.shape == (40, 4)
    assert data.eval_relevance(eval_set).shape == (40, 160)


def test_a_caption_without_a_role_graph_stops_the_conversion_naming_it(layout, tmp_path):
    graphs_path = layout / ANNOTATION / "sent2rolegraph.augment.json"
    graphs = json.loads(graphs_path.read_text())
    copy = tmp_path / "ranp"
    shutil.copytree(layout, copy)
    missing = sorted(graphs)[0]
    del graphs[missing]
    (copy / ANNOTATION / "sent2rolegraph.augment.json").write_text(json.dumps(graphs))
    with pytest.raises(StoreError, match=f"no role graph for caption '{missing}'"):
        convert_hgr_msrvtt(copy, tmp_path / "store")
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_the_loader_settings_are_checked_against_the_model(layout):
    config = hgr_config(layout.parent, "arch.args.num_words=27")
    prepare_data(config)
    with pytest.raises(ConfigError, match="num_words: the model has 27 words but .* vocabulary of 56"):
        build_data(config)
    with pytest.raises(ConfigError, match="frame_sampling: HGR needs \"select\", got \"first\""):
        build_data(hgr_config(layout.parent, "data_loader.args.frame_sampling=\"first\""))


def test_generated_captions_get_template_role_graphs():
    assert template_role_graph("take plate and red knife") == [
        {"ROOT": {"role": "ROOT", "spans": [], "words": []}, "1": {"role": "V", "spans": [0], "words": ["take"]},
         "2": {"role": "ARG1", "spans": [1], "words": ["plate"]},
         "3": {"role": "ARG1", "spans": [3, 4], "words": ["red", "knife"]}},
        [["1", "2", "ARG1"], ["1", "3", "ARG1"]]]


@pytest.mark.slow
def test_generated_role_graphs_import_into_an_existing_store(layout, tmp_path):
    store = tmp_path / "store"
    convert_hgr_msrvtt(layout, store)
    path = add_role_graphs(store, "generated", name="templates")
    config = hgr_config(tmp_path, "data_loader.args.role_graphs=\"templates\"")
    config["arch"]["args"]["num_words"] = vocabulary_of(read_captions(store)[2])[1]
    data = build_data(config)
    assert data.role_graphs.path == path
    text = data.text_inputs(torch.tensor([0]))
    assert text.verb_masks[0, 0].nonzero().flatten().tolist() == [0]  # the first word is the verb node
    assert np.isclose(float(text.rel_edges[0].sum()), float((text.rel_edges[0].sum(1) > 0).sum()))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["", "-ranp"])
def test_a_tiny_hgr_trains_well_above_chance(layout, tmp_path, monkeypatch, loss):
    save = tmp_path / "saved"
    assert run(train_cli, monkeypatch, "--config", str(CONFIG).replace("train-hgr", f"train-hgr{loss}"), "--set",
               f"data_loader.args.data_dir={json.dumps(str(layout.parent))}",
               "data_loader.args.dataset_name=\"MSRVTT-HGR\"", "data_loader.args.batch_size=32",
               f"trainer.save_dir={json.dumps(str(save))}", "trainer.tensorboard=false", "trainer.epochs=15",
               "optimizer.args.lr=0.003") == 0
    (models,) = (save / "models" / f"synthetic-train-hgr{loss}").iterdir()
    metrics = json.loads((models / "metrics.json").read_text())
    chance = chance_geometric_mean(SIZES["tst"])
    assert metrics["t2v_metrics"]["geometric_mean_R1-R5-R10"] > 3 * chance
    assert metrics["v2t_metrics"]["geometric_mean_R1-R5-R10"] > 2 * chance
    data = build_data(hgr_config(layout.parent, "data_loader.args.split_name=\"test\""))
    relevance = data.eval_relevance(data.eval_set())
    shuffled = ndcg_and_map(torch.rand(relevance.shape, generator=torch.Generator().manual_seed(0)), relevance)
    assert metrics["relevance_metrics"]["nDCG_avg"] > shuffled["nDCG_avg"] + 0.1
    history = json.loads((models / "history.json").read_text())
    assert {"level_global", "level_verb", "level_noun"} <= set(history[0]["loss_parts"])

    # the best model saved in the original's layout (as RANP releases it) evaluates to the same test metrics
    released = tmp_path / "released" / "model" / "epoch.15.th"
    released.parent.mkdir(parents=True)
    torch.save(to_original(safe_load(models / "trained_model.pth")["state_dict"]), released)
    assert run(test_cli, monkeypatch, "--resume", str(released), "--config", str(models / "config.json")) == 0
    again = json.loads((released.parent / "metrics.json").read_text())
    for name in ("t2v_metrics", "v2t_metrics", "relevance_metrics"):
        for key, value in metrics[name].items():
            assert again[name][key] == pytest.approx(value, abs=1e-6), (name, key)
