"""numpy_unet.fast.allocator: glibc keeps freed memory for reuse, and the setting can be undone."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numpy_unet import UNet
from numpy_unet.fast import allocator

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


FAULTS = """
import resource, sys
import numpy as np
from numpy_unet.fast import allocator

def faults_of_a_fresh_array(nbytes):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(nbytes // 4, np.float32)
    a[:] = 1.0  # the first write to each page is what faults
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

assert allocator.keep_freed_memory(sys.argv[1] == "keep")
size = 3 * 2**20  # 768 pages; below numpy's 4 MB huge-page advice, so 4 KB pages
faults_of_a_fresh_array(size)
print(faults_of_a_fresh_array(size))
"""


def faults_of_a_second_array(mode: str) -> int:
    """Page faults of allocating, filling and freeing 3 MB, the second time, in a fresh
    process (a process with a used heap may serve it from a free block either way)."""
    root = Path(__file__).resolve().parents[1]  # numpy_unet importable even if not installed
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True, cwd=root
    )
    return int(done.stdout.split()[-1])


@glibc
def test_freed_memory_is_reused_only_when_kept():
    assert faults_of_a_second_array("return") > 500  # handed back: every page faults again
    assert faults_of_a_second_array("keep") < 50  # the freed block is reused


def test_building_training_and_predicting_change_nothing_outside_the_model(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda *a: calls.append(a))
    monkeypatch.setattr(allocator, "applied", None)
    model = UNet((16, 16, 1), filters=2, depth=2, seed=0)
    x = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    model.compile("adam", "binary_crossentropy", metrics=[])
    model.fit(x, (x > 0.5).astype(np.float32), epochs=1, verbose=0)
    model.predict(x)
    assert calls == [] and allocator.applied is None


@glibc
def test_the_command_line_makes_the_call(monkeypatch, capsys):
    from numpy_unet.app.cli import main

    monkeypatch.setattr(allocator, "applied", None)
    try:
        assert main(["summary", "--size", "32", "--filters", "2", "--depth", "2"]) == 0
        assert allocator.applied is True
    finally:
        allocator.keep_freed_memory(True)  # what the suite's process had before: either way


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory(True) is False
