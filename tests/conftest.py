from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "mha_fwd.py"


@pytest.fixture(scope="session")
def seed_source() -> str:
    return SEED.read_text()


@pytest.fixture(scope="session")
def checker():
    """An interpreter-mode checker with timeouts short enough for hang tests."""
    from harness.checker import CheckOptions, Checker
    from harness.device import detect

    return Checker("mha_fwd", CheckOptions(load_timeout_s=15, request_timeout_s=10, total_timeout_s=240),
                   platform=detect(force_interpreter=True))


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gpu_checker():
    from harness.checker import CheckOptions, Checker

    return Checker("mha_fwd", CheckOptions(load_timeout_s=60, request_timeout_s=120, total_timeout_s=600))
