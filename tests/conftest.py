"""Fixtures shared across test folders."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test on one thread: two OpenMP threads spin badly on a CPU shared with other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
