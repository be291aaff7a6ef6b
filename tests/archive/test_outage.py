"""The archive rides out a database that is briefly unreachable: writes wait and go through,
nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from sqlalchemy.engine import make_url

from archive import Archive

from ..conftest import fresh_postgres_schema
from .conftest import PG_ENV
from .factories import kernel, passed

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"${PG_ENV} is not set")]


class Proxy:
    """A TCP relay to the server that can drop every connection and refuse new ones for a while."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.down.is_set():
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def outage(self, seconds: float) -> None:
        self.down.set()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()
        time.sleep(seconds)
        self.down.clear()


def test_writes_during_a_database_outage_wait_and_are_all_stored_once() -> None:
    with fresh_postgres_schema(os.environ[PG_ENV]) as url:
        parsed = make_url(url)
        proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        via_proxy = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with Archive.open(via_proxy) as archive:
            run = archive.create_run("mha_fwd", {}, simulated=True)
            outage = threading.Thread(target=proxy.outage, args=(3.0,))
            ids = []
            for i in range(40):
                if i == 10:
                    outage.start()
                pid, _ = archive.add_program(run, kernel(i), operator="mutate")
                archive.add_evaluation(pid, passed(1.1, 1.2), key=f"eval-{pid}", simulated=True)
                ids.append(pid)
            outage.join()
            assert archive.stats(run).evaluations == 40
            assert len(set(ids)) == 40
            assert all(len(archive.evaluations(pid)) == 1 for pid in ids)
