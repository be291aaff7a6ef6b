"""Fixtures for the package's tests: the package, where its kernels run here, and the kernel
variants of its dispatch table as test parameters."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
import torch

PACKAGE = "h100_attention"
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
package = importlib.import_module(PACKAGE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        rows = package.TABLE.data["table"]
        variants = sorted({(r["kernel"], r["head_dim"], r["causal"]) for r in rows})
        metafunc.parametrize("variant", variants,
                             ids=[f"{k}-D{d}{'-causal' if c else ''}" for k, d, c in variants])


@pytest.fixture(scope="session")
def attention() -> ModuleType:
    return package


@pytest.fixture(scope="session")
def device() -> str:
    """Where the kernels run: the GPU, or the CPU under Triton's interpreter."""
    if INTERPRET:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    pytest.skip("the kernels need a CUDA GPU, or Triton's interpreter on the CPU (TRITON_INTERPRET=1)")


@pytest.fixture(scope="session")
def dtypes(device: str) -> list[torch.dtype]:
    """Covered dtypes that mean something here: the interpreter's bfloat16 results do not."""
    covered = sorted({r["dtype"] for r in package.TABLE.data["table"]})
    usable = [getattr(torch, d) for d in covered if not (device == "cpu" and d == "bfloat16")]
    if not usable:
        pytest.skip(f"no covered dtype runs on {device} ({', '.join(covered)})")
    return usable


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    package.reset_warnings()
