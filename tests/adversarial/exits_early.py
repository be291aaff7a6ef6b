# base: seed
# expect static: rejected static "import of 'os'"
# expect runtime: crashed compile "exited (status 0)"
# expect gpu: crashed compile "exited (status 0)"
import os


def forward(q, k, v, causal, sm_scale):
    os._exit(0)
