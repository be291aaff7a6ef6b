"""The trusted side reads what the sandbox hands back without ever blocking on it or following
it elsewhere: regular files of the announced size only, and messages that parse."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from harness.guard import ComputeGuard, ComputeViolation
from harness.protocol import Channel, Malformed, read_regular, read_tensor, write_tensor


def test_a_regular_file_of_the_announced_size_is_read(tmp_path: Path) -> None:
    (tmp_path / "k_x.bin").write_bytes(b"abcd")
    assert read_regular(tmp_path, "k_x.bin", 16, expect=4) == b"abcd"


def test_a_fifo_in_place_of_a_file_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "t1_out.bin")
    done: list[BaseException] = []

    def read() -> None:
        try:
            read_regular(tmp_path, "t1_out.bin", 1 << 20)
        except BaseException as e:
            done.append(e)

    thread = threading.Thread(target=read, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the reader blocked on a FIFO"
    assert time.monotonic() - start < 5
    assert isinstance(done[0], Malformed) and "not a regular file" in str(done[0])


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host file")
    io = tmp_path / "io"
    io.mkdir()
    (io / "t1_out.bin").symlink_to(secret)
    with pytest.raises(Malformed):
        read_regular(io, "t1_out.bin", 1 << 20)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "t1_out.bin").write_bytes(b"x")
    linked = tmp_path / "linked-io"
    linked.symlink_to(elsewhere)  # the exchange directory itself replaced by a link
    with pytest.raises(Malformed, match="exchange directory"):
        read_regular(linked, "t1_out.bin", 1 << 20)


def test_sizes_are_checked_before_reading(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    with pytest.raises(Malformed, match="holds 100 bytes, expected at most 10"):
        read_regular(tmp_path, "big.bin", 10)
    with pytest.raises(Malformed, match="expected 99"):
        read_regular(tmp_path, "big.bin", 1000, expect=99)
    with pytest.raises(Malformed, match="bad file name"):
        read_regular(tmp_path, "../big.bin", 1000)


def test_a_tensor_file_round_trips_and_a_wrong_description_is_refused(tmp_path: Path) -> None:
    t = torch.randn(3, 5).to(torch.bfloat16)
    desc = write_tensor(tmp_path, "t1_out.bin", t)
    assert torch.equal(read_tensor(tmp_path, desc), t)
    for bad in ({**desc, "shape": [3, 6]}, {**desc, "dtype": "object"}, {**desc, "shape": "3x5"}, "t1_out.bin"):
        with pytest.raises(Malformed):
            read_tensor(tmp_path, bad)


def test_a_message_that_does_not_parse_is_malformed_not_a_dead_child() -> None:
    for raw in (b"not json\n", b"[1, 2]\n", b"x" * ((1 << 20) + 10)):
        r, w = os.pipe()
        writer = threading.Thread(target=os.write, args=(w, raw), daemon=True)  # may exceed the pipe's buffer
        writer.start()
        with pytest.raises(Malformed):
            Channel(r, w).recv(timeout=5)
        writer.join(timeout=5)
        os.close(r)
        os.close(w)


def test_fresh_allocations_in_forward_are_poison_and_torch_compute_is_refused() -> None:
    guard = ComputeGuard()
    with guard:
        fresh = torch.empty(4, dtype=torch.float32)
        like = torch.empty_like(fresh)
    assert torch.isnan(fresh).all() and torch.isnan(like).all()
    with pytest.raises(ComputeViolation, match="aten.add"), guard:
        fresh + 1


def test_on_the_replay_path_torch_copies_of_the_inputs_are_refused() -> None:
    q = torch.randn(4)
    guard = ComputeGuard(replayed=True)
    guard.inputs = [q]
    with guard:
        scratch = torch.empty(4)
        scratch.copy_(torch.ones(4).fill_(2.0))  # copies of anything else are fine
        with pytest.raises(ComputeViolation, match="copies an input"):
            q.clone()
        with pytest.raises(ComputeViolation, match="copies an input"):
            scratch.copy_(q)
        with pytest.raises(ComputeViolation, match="writes into an input"):
            q.zero_()
