"""A TCP proxy that can be cut: the database becomes unreachable for whoever talks
through it, while the shared PostgreSQL server keeps running for everyone else."""

from __future__ import annotations

import contextlib
import socket
import threading


class CutProxy:
    """Forwards 127.0.0.1:`port` to `target_port`. `cut()` closes every connection and
    refuses new ones (connection refused), as a database host that went away."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="cut-proxy").start()

    def cut(self) -> None:
        with self._lock:
            self._closed = True
            for s in [self._server, *self._sockets]:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def _keep(self, s: socket.socket) -> bool:
        with self._lock:
            if not self._closed:
                self._sockets.append(s)
                return True
        s.close()
        return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._keep(client):
                return
            try:
                upstream = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            if not self._keep(upstream):
                return
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
