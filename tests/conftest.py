"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny-tensor tests on one thread: on the shared 2-core CPU, multi-threaded
    kernels on small tensors only add contention (a 1000x16 matmul took 40 ms on 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
