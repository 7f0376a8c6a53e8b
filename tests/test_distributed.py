"""torchrun data parallelism: two gloo processes take the steps of one process with the same global batch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, load_script, run

from trainer.distributed import GlobalBatchNorm1d

CONFIG = str(REPO / "configs" / "synthetic" / "train-ce.json")
# 100 training videos in global batches of 32: three batches of 32 and one of 4 per epoch, each
# split over the ranks; SGD, so the weights follow the gradients without Adam's normalisation
SMALL = ["data_loader.args.batch_size=32", "experts.ce_shared_dim=16", "trainer.tensorboard=false",
         'optimizer={"type": "SGD", "args": {"lr": 0.1, "momentum": 0.9}}']



def torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "train.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(save_dir, epoch: int) -> dict[str, torch.Tensor]:
    (run_dir,) = (save_dir / "models" / "synthetic-train-ce").iterdir()
    return torch.load(run_dir / f"checkpoint-epoch{epoch}.pth", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_processes_take_the_single_process_steps_and_resume(tiny_synthetic, tmp_path, monkeypatch):
    data = f"data_loader.args.data_dir={tiny_synthetic}"
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    run(load_script("train"), monkeypatch, "--config", CONFIG, "--set", data, f"trainer.save_dir={single}",
        "trainer.epochs=2", *SMALL)
    torchrun("--config", CONFIG, "--set", data, f"trainer.save_dir={parallel}", "trainer.epochs=1", *SMALL)
    (run_dir,) = (parallel / "models" / "synthetic-train-ce").iterdir()
    torchrun("--resume", str(run_dir / "checkpoint-epoch1.pth"), "--set", "trainer.epochs=2")

    for epoch in (1, 2):
        want, got = weights(single, epoch), weights(parallel, epoch)
        assert want.keys() == got.keys()
        for key in want:  # weights and BatchNorm running statistics
            torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-5, msg=key)
    first, second = weights(single, 1), weights(single, 2)
    moved = max((second[k].float() - first[k].float()).abs().max().item() for k in first)
    assert moved > 1e-2  # an epoch moves the weights far beyond the tolerance
    assert (run_dir / "trained_model.pth").is_file() and (run_dir / "metrics.json").is_file()
    (log_dir,) = (parallel / "log" / "synthetic-train-ce").iterdir()
    assert (log_dir / "info.log").read_text().count("Test metrics of the best model") == 2  # rank 0 only


def test_global_batch_norm_is_batch_norm_outside_a_process_group():
    torch.manual_seed(0)
    plain = torch.nn.BatchNorm1d(5)
    converted = torch.nn.BatchNorm1d(5)
    converted.__class__ = GlobalBatchNorm1d
    x = torch.randn(8, 5)
    torch.testing.assert_close(converted(x), plain(x))
    torch.testing.assert_close(converted.running_var, plain.running_var)


@pytest.mark.slow
def test_ranks_share_the_global_batches(tiny_synthetic):
    from trainer.build import build_data
    from utils.config.load import load_config

    data = build_data(load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", *SMALL,
                                           "data_loader.args.batch_size=48"]))  # 160 videos: a short last batch
    single = list(data.train_batches(torch.Generator().manual_seed(3)))
    ranks = [list(data.train_batches(torch.Generator().manual_seed(3), rank, 2)) for rank in (0, 1)]
    assert [len(b) for b in single] == [48, 48, 48, 16] and [len(b) for b in ranks[0]] == [24, 24, 24, 8]
    for whole, first, second in zip(single, *ranks):
        assert torch.equal(whole.video_rows, torch.cat([first.video_rows, second.video_rows]))
        assert torch.equal(whole.text, torch.cat([first.text, second.text]))
        for name in whole.experts:
            assert torch.equal(whole.experts[name], torch.cat([first.experts[name], second.experts[name]]))


@pytest.mark.slow
def test_ranks_carry_the_relevance_of_the_global_batch(tiny_synthetic):
    """A relevance-aware loss scores the gathered [global, global] similarities, so every rank's
    share carries the relevance of the whole global batch, the single process's."""
    from trainer.build import build_data, prepare_data
    from utils.config.load import load_config

    config = load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", *SMALL])
    prepare_data(config)  # the Synthetic captions' classes
    data = build_data(config)
    single = list(data.train_batches(torch.Generator().manual_seed(3), relevance=True))
    for rank in (0, 1):
        shares = list(data.train_batches(torch.Generator().manual_seed(3), rank, 2, relevance=True))
        for whole, share in zip(single, shares):
            assert share.relevance.shape == (len(whole), len(whole))
            assert torch.equal(share.relevance, whole.relevance)


@pytest.mark.slow
def test_a_ranks_distillation_target_is_that_of_the_global_batch(tiny_synthetic):
    """TeachText scores the gathered [global, global] similarities, so every rank's share names
    the global batch's rows and its distillation term equals the single process's."""
    from data_loader.teachtext.teachers import Teacher
    from trainer.build import build_data
    from trainer.teachtext.distill import Distillation
    from utils.config.load import load_config

    data = build_data(load_config(CONFIG, [f"data_loader.args.data_dir={tiny_synthetic}", *SMALL]))
    generator = torch.Generator().manual_seed(0)
    teacher = Teacher({"appearance": torch.randn(len(data.store.video_ids), 8, generator=generator)},
                      {"appearance": torch.randn(int(data.store.caption_offsets[-1]), 8, generator=generator)})
    distillation = Distillation([teacher])
    single = list(data.train_batches(torch.Generator().manual_seed(3)))
    for rank in (0, 1):
        shares = list(data.train_batches(torch.Generator().manual_seed(3), rank, 2))
        for whole, share in zip(single, shares):
            assert torch.equal(share.global_rows[0], whole.video_rows)
            assert torch.equal(share.global_rows[1], whole.caption_rows[:, 0])
            sims = torch.randn(len(whole), len(whole), generator=generator)
            torch.testing.assert_close(distillation.batch_parts(sims, share), distillation.batch_parts(sims, whole))
    assert single[0].global_rows is None
