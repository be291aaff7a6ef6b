# expect static: rejected static "syntax error at line"
# expect gpu: rejected compile "importing the candidate failed"
import triton


def forward(q, k, v, causal, sm_scale)
    return q
