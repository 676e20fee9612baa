"""The HTTP server's connection limits per gate process, and the file descriptors they take.

Why each limit (issue 13; docs/http-api.md, "Connection limits"). granian used to take its defaults:
backpressure = backlog ÷ workers (512 connections per process) and, in its `auto` HTTP mode, no
timeout at all on a connection that never sends a byte (hyper-util reads the first bytes to tell
HTTP/1 from HTTP/2 with no deadline). ~1,000 silent sockets held every permit, and every buyer
waited in the kernel's listen queue for an answer that never came. Now:

- **HTTP/1.1 only** (`http=1`): hyper's header-read timeout then runs from the accept, so a socket
  that sends nothing, or its head a byte at a time (slowloris), is closed after
  `header_read_timeout_ms`, without an answer (hyper sends no 408). The same timer runs while a
  kept-alive connection waits for its next request: granian 2.8 has no separate keep-alive idle
  timeout, so the one setting is both. 10 s: a head is one packet, in time even after a few
  retransmissions, and a client's pool must drop an idle connection before the server does, or
  a request sent on it as it closes is lost (httpx drops them after 5 s; aiohttp after 15 s).
  Shorter frees permits sooner; longer races fewer client pools.
- **`max_connections` per process** (granian's `backpressure`: a permit taken before each accept
  and held until that connection closes, idle or not). It must exceed `max_inflight`: each
  admission in flight holds a connection, so a lower limit would stop accepting before the gate
  could shed load with an honest 503 `overloaded`. The default, twice `max_inflight`, leaves as
  many connections again for keep-alive and slow clients, whom the timeout clears. When every
  permit is taken, new connections wait in the listen queue, unanswered, until one closes: so
  silent sockets beyond the limit delay buyers by at most `header_read_timeout_ms`.
- **`head_limit_bytes`** bounds a connection's read buffer; a head beyond it is answered 431 by
  the server. Measured: a half-sent 16 KB head costs a server process ~30 KiB (~120 MiB at
  `max_connections`); with granian's default buffer (408 KiB) a half-sent 400 KB head cost 400 KiB,
  which at this connection limit would be 1.6 GiB per process.
- **`listen_backlog`**: connections the kernel completes before a process accepts them; a burst
  of buyers beyond it waits a SYN retransmission (1 s). Linux caps it at `net.core.somaxconn`.

Each connection is a file descriptor. granian raises its processes' soft RLIMIT_NOFILE to the
hard limit when it loads (measured: 1024 → the hard 20000); uvicorn does not. `ensure_nofile`
raises it for either server before the server processes start (they inherit it), and refuses
to start when the hard limit cannot hold `max_connections` plus FD_RESERVE.
"""

from __future__ import annotations

import resource

from flashgate.settings import ConfigError
from gate.settings import GateSettings

# Descriptors a gate process holds besides its connections: the listener, Redis, the Kafka
# producer's broker sockets and wake-up pipes, the PostgreSQL pool, metrics files, the event loop.
FD_RESERVE = 256


def nofile_soft_limit(max_connections: int, soft: int, hard: int) -> int:
    """The soft RLIMIT_NOFILE a process serving `max_connections` connections needs, given its limits.

    Returns `soft` when it is enough, else the descriptors needed (connections + FD_RESERVE).
    RLIM_INFINITY counts as no limit. Raises ConfigError when the hard limit is below the need.
    """
    needed = max_connections + FD_RESERVE
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"FLASHGATE_GATE_MAX_CONNECTIONS={max_connections} needs {needed} file descriptors per process, "
            f"but the hard limit is {hard} (ulimit -Hn): raise it, or lower FLASHGATE_GATE_MAX_CONNECTIONS"
        )
    return needed


def ensure_nofile(settings: GateSettings) -> int:
    """Raise this process's soft RLIMIT_NOFILE for `settings.max_connections`; return the limit now in force.

    Raises ConfigError when the limit cannot be raised that far.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = nofile_soft_limit(settings.max_connections, soft, hard)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as e:  # e.g. above a system-wide per-process cap
            raise ConfigError(
                f"cannot raise the open-file limit to {wanted} for FLASHGATE_GATE_MAX_CONNECTIONS: {e}"
            ) from e
    return wanted
