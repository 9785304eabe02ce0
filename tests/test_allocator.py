"""numpy_unet.allocator: glibc keeps freed memory for reuse, and the setting can be undone."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from numpy_unet import UNet, allocator

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def faults_of_a_fresh_array(nbytes: int) -> int:
    """Minor page faults taken to allocate and fill an array, which is then freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(nbytes // 4, np.float32)
    a[:] = 1.0  # the first write to each page is what faults
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_freed_memory_is_reused_only_when_kept():
    size = 3 * 2**20  # 768 pages; below numpy's 4 MB huge-page advice, so 4 KB pages
    try:
        assert allocator.keep_freed_memory(False)
        faults_of_a_fresh_array(size)
        assert faults_of_a_fresh_array(size) > 500  # handed back, so every page faults again
        assert allocator.keep_freed_memory(True)
        faults_of_a_fresh_array(size)
        assert faults_of_a_fresh_array(size) < 50  # the freed block is reused
    finally:
        allocator.keep_freed_memory(True)


@glibc
def test_building_a_unet_respects_an_earlier_choice():
    try:
        allocator.keep_freed_memory(False)
        UNet((16, 16, 1), filters=1, depth=1)
        assert allocator._applied is False  # UNet() only sets it when nobody has
    finally:
        allocator.keep_freed_memory(True)
    assert allocator._applied is True


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory(True) is False
