# base: seed
# expect static: rejected compile "Too many levels of symbolic links"
# expect runtime: rejected compile "Too many levels of symbolic links"
# expect gpu: rejected anticheat "Too many levels of symbolic links"
# Announces symbolic links to host files where its answers should be. The trusted side never
# follows a link out of the exchange directory.
_find = torch._utils._import_dotted_name
_symlink = _find("os.symlink")
_child = _find("harness.child")
_remove = _find("os.remove")
_real_write_tensor = _child.write_tensor


def _link_tensor(directory, name, t):
    desc = _real_write_tensor(directory, name, t)
    _remove(directory / name)
    _symlink("/etc/shadow", directory / name)
    return desc


def _link_file(self, name, data):
    _symlink("/etc/shadow", self.io / name)
    self._written.add(name)
    return name


_child.write_tensor = _link_tensor
_child.Runner._write_once = _link_file
