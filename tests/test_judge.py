"""The parent's handle on the judge process, on a machine without a GPU: a judge that cannot
start says why, promptly, and leaves nothing behind. (Its work on a GPU: tests/test_replay_gpu.py.)"""

from __future__ import annotations

import time

import pytest
import torch

from harness.judge import Judge, JudgeFailed


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows the judge's failure where there is no GPU")
def test_a_judge_that_cannot_reach_a_gpu_fails_to_start_with_its_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    judge = Judge("mha_fwd", cache=tmp_path / "cache", start_timeout=120)
    start = time.monotonic()
    with pytest.raises(JudgeFailed) as failed:
        judge.start()
    assert failed.value.kind == "crash" and "the judge process ended" in str(failed.value)
    assert "CUDA" in str(failed.value) or "cuda" in str(failed.value)  # its last output says why
    assert time.monotonic() - start < 120
    judge.close()
    assert not judge.workdir.exists()
