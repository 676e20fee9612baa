"""Which checkout's code a process really runs: a site hook for the A/B driver (bench/ab.py).

Python imports `sitecustomize` at start-up from the first sys.path entry that has it; bench/ab.py
puts this folder on PYTHONPATH beside the checkout under test and sets FLASHGATE_AB_PROBE to a
file. A daemon thread then polls sys.modules (5 times a second, for at most 30 s, and again in
every forked child such as granian's workers) and appends a JSON line whenever one of the gate
app, the worker or flashgate.names appears: pid, ppid, argv and the module's __file__, plus
flashgate.names.LUA_DIR (where the Lua scripts are read from). Without FLASHGATE_AB_PROBE
it does nothing. No state at module level: everything lives in the thread's closure.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

WATCHED = ("gate.app", "worker.main", "flashgate.names")


def _watch(path: str, limit_s: float = 30.0, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + limit_s
    seen: dict[str, str] = {}
    while len(seen) < len(WATCHED) and time.monotonic() < deadline:
        new = {name: str(getattr(mod, "__file__", None)) for name in WATCHED
               if name not in seen and (mod := sys.modules.get(name)) is not None}  # fmt: skip
        names = sys.modules.get("flashgate.names")
        if "flashgate.names" in new and not hasattr(names, "LUA_DIR"):
            del new["flashgate.names"]  # still executing its body: look again next time
        if new:
            seen |= new
            line = {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[:4], "modules": new,
                    "lua_dir": str(getattr(names, "LUA_DIR", "")) or None}  # fmt: skip
            with open(path, "a") as out:  # one short line per append, so processes do not interleave
                out.write(json.dumps(line) + "\n")
        time.sleep(every_s)


def _start() -> None:
    path = os.environ.get("FLASHGATE_AB_PROBE")
    if path:
        threading.Thread(target=_watch, args=(path,), name="ab-probe", daemon=True).start()


_start()
os.register_at_fork(after_in_child=_start)
