"""Shared fixtures: where the read-only shared data lies (beside the repository, as in CI)."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository: MNIST .gz files and the VNN-COMP mnistfc benchmark."""
    path = REPO_ROOT.parent / "shared"
    assert path.is_dir(), f"{path} is missing: the test data must lie beside the repository"
    return path
