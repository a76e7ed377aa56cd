"""Fixtures shared by the library tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (two threads crawl on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
