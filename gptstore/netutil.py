"""The listening socket both servers (``gptstore server``, ``gptstore serve``) bind before they
announce anything, so a port in use is one :class:`~gptstore.errors.GPTStoreError` line (exit 1)
rather than uvicorn's log lines after a "listening on" that was never true."""

from __future__ import annotations

import errno
import socket

from .errors import GPTStoreError


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening (port 0 picks a free port: read it back
    with ``sock.getsockname()[1]``), inheritable so uvicorn's workers can serve it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise GPTStoreError(f"cannot listen on {host}: {exc.strerror or exc}",
                            hint="pass --host with an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise GPTStoreError(f"port {port} on {host} is already in use",
                                hint="stop the program that holds it, or pass --port with another port "
                                     "(--port 0 picks a free one)") from None
        raise GPTStoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                            hint="pass another --host or --port (ports below 1024 need privileges)") from None
    sock.set_inheritable(True)
    return sock
