"""JSON-lines messages between the trusted parent and the sandboxed child, over two pipes,
and the raw tensor files they exchange in the child's scratch directory.

The child's stdout and stderr are only a log: a candidate that prints cannot forge a message,
and one that writes to the message pipe can only forge its own results, which the parent
never believes. Whatever the child hands back is read defensively: messages are capped and
must parse, files must be regular files of the announced size (no symlinks, no FIFOs that
would block the reader), and anything else is a ``Malformed`` answer: the candidate's fault.
"""

from __future__ import annotations

import json
import os
import re
import select
import stat
import time
from pathlib import Path
from typing import Any

MAX_LINE = 1 << 20
_NAME = re.compile(r"^[a-z0-9_]{1,80}\.bin$")


class ChannelClosed(Exception):
    """The other side closed its end (the child exited or died)."""


class ChannelTimeout(Exception):
    pass


class Malformed(Exception):
    """A message or file from the child that breaks the protocol."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._r = read_fd
        self._w = write_fd
        self._buf = b""

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self._w, view)
            view = view[n:]

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                raise Malformed("a message longer than 1 MiB")
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._r], [], [], wait)
            if not ready:
                raise ChannelTimeout()
            chunk = os.read(self._r, 65536)
            if not chunk:
                raise ChannelClosed("end of stream")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            raise Malformed("a message that is not JSON") from None
        if not isinstance(msg, dict):
            raise Malformed("a message that is not a JSON object")
        return msg


def write_tensor(directory: Path, name: str, tensor: Any) -> dict[str, Any]:
    """Write a tensor's raw bytes (any dtype, bf16 included) and describe it for ``read_tensor``."""
    import torch

    t = tensor.detach().contiguous().cpu()
    t.view(-1).view(torch.uint8).numpy().tofile(directory / name)
    return {"file": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}


def read_regular(directory: Path, name: str, max_bytes: int, expect: int | None = None) -> bytes:
    """The bytes of a file the child wrote into ``directory``, read without following a symlink
    (neither the directory nor the file), without blocking (a FIFO or device is refused before
    any read) and only if its size is at most ``max_bytes`` (exactly ``expect`` when given)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise Malformed(f"bad file name {name!r:.80}")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise Malformed(f"its exchange directory is unusable: {e.strerror}") from None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
        except OSError as e:
            raise Malformed(f"{name}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Malformed(f"{name} is not a regular file")
            if st.st_size > max_bytes or (expect is not None and st.st_size != expect):
                want = f"{expect}" if expect is not None else f"at most {max_bytes}"
                raise Malformed(f"{name} holds {st.st_size} bytes, expected {want}")
            chunks, left = [], st.st_size
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 24))
                if not chunk:
                    raise Malformed(f"{name} shrank while it was read")
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


_TENSOR_DTYPES = ("float16", "bfloat16", "float32", "float64")


def read_tensor(directory: Path, desc: Any, max_bytes: int = 1 << 32) -> Any:
    """A tensor ``write_tensor`` described, read with ``read_regular``'s defences."""
    import torch

    if not isinstance(desc, dict) or desc.get("dtype") not in _TENSOR_DTYPES or not isinstance(desc.get("shape"), list):
        raise Malformed("a tensor description that is not {file, dtype, shape}")
    shape = desc["shape"]
    if len(shape) > 8 or not all(type(n) is int and 0 <= n < 1 << 40 for n in shape):
        raise Malformed("a tensor shape that is not a short list of sizes")
    dtype = getattr(torch, desc["dtype"])
    numel = 1
    for n in shape:
        numel *= n
    raw = read_regular(directory, desc.get("file", ""), max_bytes, expect=numel * dtype.itemsize)
    if not raw:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
