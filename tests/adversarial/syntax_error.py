# expect static: rejected static "syntax error at line"
import triton


def forward(q, k, v, causal, sm_scale)
    return q
