"""A TCP proxy in front of a database: it can hang or go away for whoever talks through
it, while the shared PostgreSQL server keeps running for everyone else."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forwards a free 127.0.0.1 port (`port`) to `target_port`.

    `stall()` stops forwarding in both directions without closing any socket (a hung
    connection: the peer sees no error, no reset, just silence; new connections are
    accepted and hang too); `resume()` forwards again what was held. `cut()` closes every
    connection and refuses new ones (connection refused), as a database host that went
    away; `close()` is the same, as the clean-up.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def cut(self) -> None:
        with self._lock:
            self._closed = True
        self._flowing.set()  # the stalled pumps see _closed and end
        with self._lock:
            for s in [self._server, *self._sockets]:
                with contextlib.suppress(OSError):  # wakes a thread blocked on it
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    close = cut

    def _keep(self, s: socket.socket) -> bool:
        """Tracks `s` for cut(); closes it at once (False) if the proxy is closed."""
        with self._lock:
            if not self._closed:
                self._sockets.append(s)
                return True
        s.close()
        return False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._keep(client):
                threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()
        try:
            upstream = socket.create_connection(self._target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        if not self._keep(upstream):
            return
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                self._flowing.wait()  # what arrived while stalled is held, not dropped
                if not data or self._closed:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
