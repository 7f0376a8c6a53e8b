"""trainer.device / --device: the device a run uses, and one clear line when it cannot."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from trainer.build import select_device
from utils.config.load import load_config
from utils.errors import ConfigError

CONFIG = REPO / "configs" / "synthetic" / "train-ce.json"


def device_of(value: str, local_rank: int = 0) -> torch.device:
    return select_device(load_config(CONFIG, [f"trainer.device={value}"]), local_rank)


def test_cpu_and_auto():
    assert device_of("cpu") == torch.device("cpu")
    assert device_of("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("value", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device_is_a_config_error(value):
    with pytest.raises(ConfigError, match=rf"^--set: trainer.device: expected .*auto.*cpu.*cuda.*, got \"{value}\""):
        device_of(value)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("args", [["--set", "trainer.device=cuda"], ["--device", "cuda:1"]])
def test_cuda_without_cuda_is_one_line_and_exit_2(args):
    done = subprocess.run([sys.executable, "train.py", "--config", str(CONFIG), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and "trainer.device" in line and "no CUDA device" in line


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_follows_the_local_rank():
    assert device_of("cuda", local_rank=torch.cuda.device_count() - 1).index == torch.cuda.device_count() - 1
