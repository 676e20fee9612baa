"""Loopback port helpers: pick a free port, tell whether one is taken."""

from __future__ import annotations

import socket


def free_port(exclude: set[int] | None = None) -> int:
    """A loopback TCP port nothing listens on now (bind to 0, close); not in `exclude`."""
    exclude = exclude or set()
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in exclude:
            return port


def port_in_use(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
