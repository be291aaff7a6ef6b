"""Entry point of a sandbox process: fence it in, then hand over to the child runner.

``python -m harness.boot CONFIG_JSON``. Only the standard library and ``harness.isolation``
are imported before the fence is up. The process forks once: the first child is PID 1 of a
new PID namespace, so when it dies every process the candidate started dies with it.
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
    view = scratch
    if cfg["isolate"]:
        if isolation.enter_namespaces(report):
            view = isolation.fence_filesystem(scratch, cfg["keep_paths"], report)
    else:
        report.missing.append("isolation turned off by configuration")

    pid = os.fork()
    if pid:
        os.write(cfg["resp_fd"], (json.dumps({"boot": {"child_pid": pid}}) + "\n").encode())
        for fd in (cfg["req_fd"], cfg["resp_fd"]):
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)  # a signal reads as 128 + its number, as in a shell

    isolation.die_with_parent()
    if cfg["isolate"] and "pid-namespace" in report.done:
        isolation.mount_proc(report)
    os.chdir(view)
    for key in ("HOME", "TRITON_CACHE_DIR", "TMPDIR"):
        if os.environ.get(key, "").startswith(scratch):
            os.environ[key] = view + os.environ[key][len(scratch):]
    if cfg["isolate"]:
        isolation.limit_resources(report, cfg["max_file_bytes"])
        isolation.drop_capabilities(report)

    from harness.child import serve

    serve(cfg, report)


if __name__ == "__main__":
    main()
