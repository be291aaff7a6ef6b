"""JSON-lines messages between the trusted parent and the sandboxed child, over two pipes,
and the raw tensor files they exchange in the child's scratch directory.

The child's stdout and stderr are only a log: a candidate that prints cannot forge a message,
and one that writes to the message pipe can only forge its own results, which the parent
checks against a reference it computes itself.
"""

from __future__ import annotations

import json
import os
import re
import select
import time
from pathlib import Path
from typing import Any

MAX_LINE = 1 << 20
_NAME = re.compile(r"^[a-z0-9_]{1,64}\.bin$")


class ChannelClosed(Exception):
    """The other side closed its end (the child exited or died)."""


class ChannelTimeout(Exception):
    pass


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
                raise ChannelClosed("message longer than 1 MiB")
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
            raise ChannelClosed("malformed message") from None
        if not isinstance(msg, dict):
            raise ChannelClosed("malformed message")
        return msg


def write_tensor(directory: Path, name: str, tensor: Any) -> dict[str, Any]:
    """Write a tensor's raw bytes (any dtype, bf16 included) and describe it for ``read_tensor``."""
    import torch

    t = tensor.detach().contiguous().cpu()
    t.view(-1).view(torch.uint8).numpy().tofile(directory / name)
    return {"file": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}


def read_tensor(directory: Path, desc: dict[str, Any]) -> Any:
    import numpy as np
    import torch

    name = desc.get("file", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"bad tensor file name {name!r}")
    dtype = getattr(torch, str(desc["dtype"]))
    shape = [int(s) for s in desc["shape"]]
    raw = np.fromfile(directory / name, dtype=np.uint8)
    expected = int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
    if raw.size != expected:
        raise ValueError(f"tensor file {name} holds {raw.size} bytes, expected {expected}")
    return torch.from_numpy(raw).view(dtype).reshape(shape)
