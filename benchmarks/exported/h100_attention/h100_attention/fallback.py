"""When a call is not covered by the kernels: torch's SDPA after one warning per reason, or an
``AttentionFallbackError`` in strict mode.

Strict mode is on for a call given ``strict=True``, or for every call when the environment
variable ``<PACKAGE>_STRICT`` (this package's name in capitals) is ``1`` when the package is
imported. It is for checking that a model really runs the kernels.
"""

from __future__ import annotations

import os
import warnings

import torch

STRICT_ENV = f"{__package__.upper()}_STRICT"
STRICT = os.environ.get(STRICT_ENV, "0") not in ("", "0")


class AttentionFallbackWarning(UserWarning):
    """A call ran torch's SDPA instead of the kernels; filter it like any warning."""


class AttentionFallbackError(RuntimeError):
    """A call in strict mode that the kernels do not cover."""


def refusal(reason: str) -> AttentionFallbackError:
    return AttentionFallbackError(f"{__package__}: {reason}; strict mode allows no fallback to torch's SDPA")


_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(f"{__package__}: {reason}; running torch's scaled_dot_product_attention instead "
                  "(warned once per reason)", AttentionFallbackWarning, stacklevel=3)


# torch.compile cannot trace warnings.warn (a graph break). A constant-result function runs
# once, for real, while the call is traced; the fallback it reports is fixed for that graph.
warn_once = torch.compiler.assume_constant_result(_warn_once)


def reset_warnings() -> None:
    """Warn again for reasons already reported (for tests and notebooks)."""
    _warned.clear()
