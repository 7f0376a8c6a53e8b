"""bf16 autocast in training and evaluation; similarities, losses and metrics stay float32."""
from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import REPO, load_script, run

from trainer.build import build_data, build_model
from trainer.evaluate import evaluate
from trainer.precision import autocast
from utils.config.load import load_config, with_eval_settings
from utils.errors import ConfigError

CONFIG = REPO / "configs" / "synthetic" / "train-ce.json"



@pytest.mark.slow
def test_bf16_evaluation_is_float32_and_close_to_fp32(tiny_synthetic):
    config = with_eval_settings(load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}",
                                                     "experts.ce_shared_dim=32"]))
    torch.manual_seed(0)
    model = build_model(config)
    data = build_data(config)
    fp32 = evaluate(model, data, torch.device("cpu"), 16, progress=False)
    bf16 = evaluate(model, data, torch.device("cpu"), 16, progress=False, precision="bf16")
    assert fp32.sims.dtype == bf16.sims.dtype == "float32"
    assert 0 < abs(fp32.sims - bf16.sims).max() < 0.05  # bfloat16 embeddings: 8 significant bits


@pytest.mark.slow
@pytest.mark.parametrize("freeze_weights", [False, True])
def test_bf16_text_embedding_casts_the_pooled_text_once_with_the_same_result(tiny_synthetic, freeze_weights):
    config = load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", "experts.ce_shared_dim=32",
                                  f"arch.args.freeze_weights={str(freeze_weights).lower()}"])
    torch.manual_seed(0)
    model = build_model(config).eval()
    head = model.ce
    batch = next(iter(build_data(config).train_batches(torch.Generator().manual_seed(0))))
    pooled = []
    head.embed_text = lambda text: pooled.append(text) or type(head).embed_text(head, text)
    with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
        embds, weights = model.embed_text(batch.text)
        flat = pooled[0].reshape(-1, pooled[0].shape[-1])
        assert flat.dtype == torch.float32  # as pooled: each Linear would cast it itself
        for name, unit in zip(head.modalities, head.text_GU):
            assert embds[name].dtype == torch.bfloat16
            assert torch.equal(embds[name].reshape(flat.shape[0], -1), unit(flat)), name
        assert torch.equal(weights.reshape(flat.shape[0], -1), head.moe_weights(flat))


@pytest.mark.slow
def test_bf16_training_sums_the_text_gradients_in_float32(tiny_synthetic):
    config = load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", "experts.ce_shared_dim=32"])
    torch.manual_seed(0)
    head = build_model(config).train().ce
    grads = []
    for through_head in (True, False):
        pooled = torch.randn(6, 2, head.moe_fc.in_features, generator=torch.Generator().manual_seed(1),
                             requires_grad=True)
        with autocast(torch.device("cpu"), "bf16"):
            if through_head:
                embds, weights = head.embed_text(pooled)
                outs = [*embds.values(), weights]
            else:  # each Linear casts the float32 text itself, its gradient comes back in float32
                flat = pooled.reshape(12, -1)
                outs = [unit(flat) for unit in head.text_GU] + [head.moe_weights(flat)]
            sum((out.float() ** 2).sum() for out in outs).backward()
        grads.append(pooled.grad)
    assert torch.equal(grads[0], grads[1])


def epoch_losses(save_dir) -> list[float]:
    (log_dir,) = (save_dir / "log" / "synthetic-train-ce").iterdir()
    return [float(x) for x in re.findall(r" {4}loss +: (\S+)$", (log_dir / "info.log").read_text(), re.M)]


@pytest.mark.slow
def test_training_in_bf16_follows_fp32(tiny_synthetic, tmp_path, monkeypatch):
    losses = {}
    for precision in ("fp32", "bf16"):
        save = tmp_path / precision
        assert run(load_script("train"), monkeypatch, "--config", str(CONFIG), "--precision", precision, "--set",
                   f"data_loader.args.data_dir={tiny_synthetic}", f"trainer.save_dir={save}", "trainer.epochs=3",
                   "trainer.tensorboard=false", "experts.ce_shared_dim=32",
                   "data_loader.args.batch_size=32") == 0
        (models,) = (save / "models" / "synthetic-train-ce").iterdir()
        assert json.loads((models / "config.json").read_text())["trainer"]["precision"] == precision
        assert json.loads((models / "metrics.json").read_text())["precision"] == precision
        (log_dir,) = (save / "log" / "synthetic-train-ce").iterdir()
        assert f"Training on cpu in {precision}:" in (log_dir / "info.log").read_text()
        losses[precision] = epoch_losses(save)
    assert len(losses["bf16"]) == 3 and losses["bf16"][2] < 0.8 * losses["bf16"][0]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match='trainer.precision: expected one of "auto", "fp32", "bf16", got "fp16"'):
        load_config(CONFIG, ["trainer.precision=fp16"])
    with pytest.raises(ConfigError, match="trainer.precision"):
        autocast(torch.device("cpu"), "fp16")
