# base: seed
# expect static: rejected compile "not a regular file"
# expect runtime: rejected compile "not a regular file"
# expect gpu: rejected anticheat "not a regular file"
# Makes its own process announce FIFOs where tensor, kernel and snapshot files should be: a
# reader that opened them would block for ever. The trusted side refuses anything but a regular
# file, before reading.
_find = torch._utils._import_dotted_name
_mkfifo = _find("os.mkfifo")
_child = _find("harness.child")
_remove = _find("os.remove")
_real_write_tensor = _child.write_tensor


def _fifo_tensor(directory, name, t):
    desc = _real_write_tensor(directory, name, t)
    _remove(directory / name)
    _mkfifo(directory / name)
    return desc


def _fifo_file(self, name, data):
    _mkfifo(self.io / name)
    self._written.add(name)
    return name


_child.write_tensor = _fifo_tensor
_child.Runner._write_once = _fifo_file
