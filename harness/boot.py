"""Entry point of a sandbox process: fence it in, then hand over to the child runner.

``python -m harness.boot CONFIG_JSON``. Only the standard library and ``harness.isolation``
are imported before the fence is up. The process forks once more than ``isolation.fence``
does: that child is PID 1 of a new PID namespace, so when it dies every process the candidate
started dies with it; it enters the minimal root, then serves. Every process above it only
waits and exits as its child did.
"""

from __future__ import annotations

import json
import os
import sys

from harness import isolation


def main() -> None:
    cfg = json.loads(sys.argv[1])
    report = isolation.Report()
    scratch = cfg["scratch"]
    built = False
    if cfg["isolate"]:
        built = isolation.fence(report, scratch, cfg["keep_paths"])
    else:
        report.missing.append("isolation turned off by configuration")

    pid = os.fork()
    if pid:
        os.write(cfg["resp_fd"], (json.dumps({"boot": {"child_pid": pid}}) + "\n").encode())
        for fd in (cfg["req_fd"], cfg["resp_fd"]):
            os.close(fd)
        isolation.wait_and_exit(pid)

    isolation.die_with_parent()
    view = isolation.enter_root(report) if built else scratch
    os.chdir(view)
    for key in ("HOME", "TRITON_CACHE_DIR", "TMPDIR"):
        if os.environ.get(key, "").startswith(scratch):
            os.environ[key] = view + os.environ[key][len(scratch):]
    if cfg["isolate"]:
        isolation.limit_resources(report, cfg["max_file_bytes"], cfg["max_processes"])
        isolation.drop_capabilities(report)
        isolation.install_seccomp(report)

    from harness.child import serve

    serve(cfg, report)


if __name__ == "__main__":
    main()
