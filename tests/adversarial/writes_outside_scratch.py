# base: seed
# expect static: rejected static "use of 'open'"
# expect runtime: rejected compile "Read-only file system"
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    with open("/tmp/evolve-adversarial-marker", "w") as f:  # a private tmpfs: lands nowhere
        f.write("pwned")
    with open("/root/evolve-adversarial-marker", "w") as f:
        f.write("pwned")
    return _seed_forward(q, k, v, causal, sm_scale)
