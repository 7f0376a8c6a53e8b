"""The best model is stored as weights and config only; runs continue from epoch checkpoints."""
from __future__ import annotations

import pytest
import torch
from conftest import REPO, load_script, run

from utils.errors import CheckpointError

CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
SMALL = ["data_loader.args.batch_size=64", "experts.ce_shared_dim=16", "trainer.tensorboard=false"]



def train(monkeypatch, *args: str) -> None:
    assert run(load_script("train"), monkeypatch, *args) == 0


def run_folder(save_dir):
    (folder,) = (save_dir / "models" / "synthetic-train-ce").iterdir()
    return folder


@pytest.mark.slow
def test_best_model_holds_weights_and_config_only(tiny_synthetic, tmp_path, monkeypatch):
    save = tmp_path / "saved"
    train(monkeypatch, "--config", CONFIG, "--set", f"data_loader.args.data_dir={tiny_synthetic}",
          f"trainer.save_dir={save}", "trainer.epochs=1", *SMALL)
    folder = run_folder(save)
    best = torch.load(folder / "trained_model.pth", weights_only=True)
    epoch = torch.load(folder / "checkpoint-epoch1.pth", weights_only=True)
    assert {"optimizer", "lr_scheduler", "rng"}.isdisjoint(best) and {"optimizer", "rng"} <= set(epoch)
    assert best["config"] == epoch["config"] and best["epoch"] == 1
    for key, value in epoch["state_dict"].items():
        assert torch.equal(best["state_dict"][key], value), key
    assert (folder / "trained_model.pth").stat().st_size < 0.5 * (folder / "checkpoint-epoch1.pth").stat().st_size


@pytest.mark.slow
def test_the_final_test_evaluation_runs_without_optimiser_state_or_gradients(tiny_synthetic, tmp_path, monkeypatch):
    from trainer.trainer import Trainer
    seen = {}
    evaluate = Trainer._evaluate

    def spy(self, which, data, epoch):
        if which == "test":
            seen["optimizer_state"] = len(self.optimizer.state)
            seen["grads"] = sum(p.grad is not None for p in self.model.parameters())
        return evaluate(self, which, data, epoch)

    monkeypatch.setattr(Trainer, "_evaluate", spy)
    save = tmp_path / "saved"
    train(monkeypatch, "--config", CONFIG, "--set", f"data_loader.args.data_dir={tiny_synthetic}",
          f"trainer.save_dir={save}", "trainer.epochs=1", *SMALL)
    assert seen == {"optimizer_state": 0, "grads": 0}
    assert torch.load(run_folder(save) / "checkpoint-epoch1.pth", weights_only=True)["optimizer"]["state"]


@pytest.mark.slow
def test_resume_from_the_best_model_continues_from_its_epoch_checkpoint(tiny_synthetic, tmp_path, monkeypatch):
    data = f"data_loader.args.data_dir={tiny_synthetic}"
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(monkeypatch, "--config", CONFIG, "--set", data, f"trainer.save_dir={straight}", "trainer.epochs=2", *SMALL)
    train(monkeypatch, "--config", CONFIG, "--set", data, f"trainer.save_dir={interrupted}", "trainer.epochs=1", *SMALL)
    folder = run_folder(interrupted)
    train(monkeypatch, "--resume", str(folder / "trained_model.pth"), "--set", "trainer.epochs=2")
    want = torch.load(run_folder(straight) / "checkpoint-epoch2.pth", weights_only=True)["state_dict"]
    got = torch.load(folder / "checkpoint-epoch2.pth", weights_only=True)["state_dict"]
    for key, value in want.items():
        assert torch.equal(got[key], value), key

    (folder / "checkpoint-epoch1.pth").unlink()
    (folder / "checkpoint-epoch2.pth").unlink()
    with pytest.raises(CheckpointError, match="holds the best model's weights only"):
        train(monkeypatch, "--resume", str(folder / "trained_model.pth"), "--set", "trainer.epochs=3")


@pytest.mark.slow
def test_load_model_holds_exactly_the_given_weights_and_computes_the_same(tiny_synthetic):
    from trainer.build import build_data, build_model, load_model
    from utils.config.load import load_config
    from utils.summary import count_trainable
    config = load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", *SMALL])
    torch.manual_seed(3)
    reference = build_model(config).eval()
    weights = {k: v.clone() for k, v in reference.state_dict().items()}
    loaded = load_model(config, weights).eval()
    assert all(p.device.type == "cpu" for p in loaded.state_dict().values())
    assert count_trainable(loaded) == count_trainable(reference)
    for key, value in loaded.state_dict().items():
        assert value.data_ptr() == weights[key].data_ptr(), key  # taken as given, not copied
    batch = next(iter(build_data(config).train_batches(torch.Generator().manual_seed(0))))
    with torch.no_grad():
        want = reference(batch.experts, batch.ind, batch.text)["cross_view_conf_matrix"]
        got = loaded(batch.experts, batch.ind, batch.text)["cross_view_conf_matrix"]
    assert torch.equal(got, want)
    with pytest.raises(CheckpointError, match=r"the weights do not fit the config's model: 1 weight\(s\) missing"):
        load_model(config, {k: v for k, v in weights.items() if not k.endswith("moe_fc.bias")})


@pytest.mark.slow
def test_a_checkpoint_to_evaluate_is_mapped_from_its_file_not_read(tiny_synthetic, tmp_path, monkeypatch):
    from pathlib import Path

    from trainer.checkpoints.files import checkpoint_with_config, load_any_checkpoint
    save = tmp_path / "saved"
    train(monkeypatch, "--config", CONFIG, "--set", f"data_loader.args.data_dir={tiny_synthetic}",
          f"trainer.save_dir={save}", "trainer.epochs=1", *SMALL)
    best = run_folder(save) / "trained_model.pth"
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("needs /proc/self/maps")

    def mapped_from_best(tensor):
        for line in maps.read_text().splitlines():
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= tensor.data_ptr() < hi:
                return len(fields) == 6 and fields[5] == str(best)
        return False

    state, config = checkpoint_with_config(best)
    weight = state["state_dict"]["ce.moe_fc.weight"]
    assert mapped_from_best(weight) and config["arch"]["type"] == "CENet"
    before = best.read_bytes()
    weight.zero_()  # copy-on-write: the file keeps its values
    assert best.read_bytes() == before
    assert not mapped_from_best(load_any_checkpoint(best)["state_dict"]["ce.moe_fc.weight"])
