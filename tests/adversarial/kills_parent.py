# base: seed
# expect static: rejected static "import of 'os'"
# expect runtime: crashed compile "killed by SIGKILL"
# expect gpu: crashed compile "killed by SIGKILL"
# Tries to take the checker down so no verdict is written: in its own PID namespace the
# parent is invisible (getppid() is 0), so this signal lands on its own process group.
import os
import signal


def forward(q, k, v, causal, sm_scale):
    os.kill(os.getppid(), signal.SIGKILL)
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            os.kill(int(pid), signal.SIGKILL)
    return torch.zeros_like(q)
