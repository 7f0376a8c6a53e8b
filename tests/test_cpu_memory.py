"""utils.cpu_memory: large freed CPU tensors stay with the process for the next step, until
release_freed_memory() hands them back (glibc)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

PROBE = """
import utils.cpu_memory as m
import torch


def anon():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon"))

t = torch.ones(32 << 20)  # 128 MB
before = anon()
del t
kept = anon()
m.release_freed_memory()
print(m.KEEPS_FREED_MEMORY, (before - kept) >> 10, (before - anon()) >> 10, flush=True)
"""


def freed_mb(**env: str) -> tuple[str, int, int]:
    """(KEEPS_FREED_MEMORY, MB handed back to the kernel when a 128 MB tensor is freed, MB
    handed back once release_freed_memory() has run too)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**inherited, "PYTHONPATH": str(REPO), **env})
    keeps, freed, released = out.stdout.split()
    return keeps, int(freed), int(released)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings, /proc/self/status")
def test_a_freed_large_tensor_stays_with_the_process():
    keeps, freed, released = freed_mb()
    if keeps != "True":
        pytest.skip("not glibc: mallopt unavailable")
    assert freed < 8 and released == pytest.approx(128, abs=8)
    assert freed_mb(MALLOC_MMAP_MAX_="65536") == ("False", pytest.approx(128, abs=8), pytest.approx(128, abs=8))
