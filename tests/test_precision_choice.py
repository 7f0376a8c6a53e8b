"""trainer.precision "auto": bf16 where the hardware computes it natively, fp32 elsewhere; an
explicit bf16 on hardware that emulates it runs and warns once. The capability is faked."""
from __future__ import annotations

import logging

import pytest
import torch

import trainer.precision as precision
from trainer.precision import choose_precision, cpu_flags, cpu_has_native_bf16, report_choice, use_precision
from utils.config.resolved import Config
from utils.errors import ConfigError

CPU = torch.device("cpu")


def fake_cpu(monkeypatch, capability: str, flags: set[str]) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))


@pytest.mark.parametrize(("capability", "flags", "native"), [
    ("AVX2", {"avx", "avx2", "fma"}, False),                        # AVX2 only
    ("AVX512", {"avx2", "avx512f", "avx512bw"}, False),             # AVX-512 without its bf16 extension
    ("AVX512", {"avx2", "avx512f", "avx512_bf16"}, True),           # AVX512-BF16
    ("AVX512", {"avx512f", "amx_tile", "amx_bf16"}, True),          # AMX
    ("AVX2", {"avx2", "avx512_bf16"}, False),                       # torch does not use AVX-512 here
    ("DEFAULT", {"fp", "asimd", "bf16"}, True),                     # Arm with BF16
    ("DEFAULT", {"fp", "asimd"}, False),
])
def test_native_bf16_from_capability_and_flags(capability, flags, native):
    assert cpu_has_native_bf16(capability, frozenset(flags)) is native


def test_cpu_flags_reads_the_x86_and_arm_lines(tmp_path):
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text("processor\t: 0\nflags\t\t: fpu AVX2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_auto_is_fp32_without_native_bf16_and_says_so(monkeypatch, caplog):
    fake_cpu(monkeypatch, "AVX2", {"avx2"})
    config = Config({"trainer": {"precision": "auto"}}, {}, None)
    choice = use_precision(config, CPU)
    assert (choice.used, choice.slow) == ("fp32", False)
    assert config["trainer"]["precision"] == "fp32"  # the run's saved config records what was used
    with caplog.at_level(logging.INFO):
        report_choice(choice, logging.getLogger("test"))
    assert caplog.records[0].levelno == logging.INFO
    assert "Precision: fp32 (auto on CPU AVX2, no native bf16)" in caplog.text


def test_auto_is_bf16_with_native_bf16(monkeypatch):
    fake_cpu(monkeypatch, "AVX512", {"avx512f", "avx512_bf16"})
    config = Config({"trainer": {}}, {}, None)  # auto is the default
    assert use_precision(config, CPU).used == "bf16"
    assert config["trainer"]["precision"] == "bf16"


def test_explicit_bf16_without_native_bf16_runs_and_warns_once(monkeypatch, caplog):
    fake_cpu(monkeypatch, "AVX2", {"avx2"})
    monkeypatch.setattr(precision, "_warned", set())
    choice = choose_precision("bf16", CPU)
    assert (choice.used, choice.slow) == ("bf16", True)
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            report_choice(choice, logging.getLogger("test"))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "\n" not in record.message
    assert "slower than fp32" in record.message


def test_explicit_choices_are_kept_where_bf16_is_native(monkeypatch):
    fake_cpu(monkeypatch, "AVX512", {"amx_bf16"})
    assert choose_precision("fp32", CPU).used == "fp32"
    bf16 = choose_precision("bf16", CPU)
    assert (bf16.used, bf16.slow) == ("bf16", False)
    with pytest.raises(ConfigError, match="trainer.precision"):
        choose_precision("fp16", CPU)
