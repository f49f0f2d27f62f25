"""Shared fixtures.

Test data lives outside the repository (licenses forbid copying it in): ``EDGEPOSE_TEST_DATA``
or ``../shared/data`` from the repo root.  Tests that need it skip cleanly when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Import torch before any test touches GStreamer: the TorchScript ONNX exporter was seen to abort
# (pybind11::stop_iteration) when torch was first imported after GStreamer had run in the same
# process, and pytest runs every test file in one process.
import torch  # noqa: F401,E402

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("EDGEPOSE_TEST_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not root.is_dir():
        pytest.skip(f"test data not found at {root}; set EDGEPOSE_TEST_DATA to the shared/data folder")
    return root


@pytest.fixture(scope="session")
def data_file(data_root):
    """``data_file("videos/single_face.mp4")`` -> Path, or skip naming the missing file."""

    def get(rel: str) -> Path:
        p = data_root / rel
        if not p.exists():
            pytest.skip(f"test data file not found: {p}; set EDGEPOSE_TEST_DATA to the shared/data folder")
        return p

    return get


@pytest.fixture(scope="session")
def aflw_dir(data_file) -> Path:
    return data_file("aflw2000-sample")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def cached_registry_model(name: str) -> Path:
    """The verified file of model ``name`` from the edgepose cache (``edgepose models fetch NAME``,
    which scripts/setup.sh runs); the test skips when it is not there."""
    from edgepose.metadata import file_sha256
    from edgepose.runtime.fetch import KNOWN_MODELS, cached_path

    path = cached_path(name)
    if not path.is_file():
        pytest.skip(f"{name} is not in the edgepose cache ({path}); run `edgepose models fetch {name}`")
    assert file_sha256(path) == KNOWN_MODELS[name].sha256
    return path
