# base: seed
# expect gpu: rejected anticheat "launched no kernel"
# Restores the launcher the recorder wraps, so that its launches go unrecorded. Unrecorded
# launches are never replayed: as far as the judge knows, forward does nothing.
_find = torch._utils._import_dotted_name
_CompiledKernel = _find("triton.compiler.compiler.CompiledKernel")


def _plain(kernel):
    kernel._init_handles()
    return kernel._run


_CompiledKernel.run = property(_plain)
