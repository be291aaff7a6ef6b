# base: seed
# expect static: rejected compile "out of protocol"
# expect runtime: rejected compile "out of protocol"
# expect gpu: rejected compile "out of protocol"
# Writes garbage into every pipe it holds, its message pipe to the parent among them. A
# message that does not parse rejects the candidate; it is never a harness error to retry.
_find = torch._utils._import_dotted_name
_write, _fstat, _isfifo = _find("os.write"), _find("os.fstat"), _find("stat.S_ISFIFO")


def forward(q, k, v, causal, sm_scale):
    for fd in range(3, 64):
        try:
            if _isfifo(_fstat(fd).st_mode):
                _write(fd, b"}} not json {{\n")
        except OSError:
            pass
    return torch.empty_like(q)
