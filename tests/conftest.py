"""Shared fixtures: where the read-only shared data lies (beside the repository, as in CI)."""

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository: MNIST .gz files and the VNN-COMP mnistfc benchmark."""
    path = REPO_ROOT.parent / "shared"
    assert path.is_dir(), f"{path} is missing: the test data must lie beside the repository"
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread, as `advgap train` uses: intra-op threads on these small tensors only add
    synchronisation, which is very slow on a shared, loaded machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
