"""The archive rides out a database that is briefly unreachable: writes wait and go through,
nothing lost, nothing duplicated, even when a commit went through but its acknowledgement was
lost and the archive retried it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from archive import Archive

from ..conftest import fresh_postgres_schema
from .conftest import PG_ENV
from .factories import kernel, passed

LostAcknowledgement = Callable[[], AbstractContextManager[None]]


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


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"${PG_ENV} is not set")
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


@pytest.fixture
def lost_acknowledgement() -> Iterator[LostAcknowledgement]:
    """``with lost_acknowledgement():`` makes the first write inside commit and then fail as if
    the connection dropped before the server's reply arrived, so the archive retries it; the
    block fails unless that happened."""
    armed, fired = False, 0

    def after_commit(_session: Session) -> None:
        nonlocal armed, fired
        if armed:
            armed, fired = False, fired + 1
            raise OperationalError("COMMIT", None, ConnectionResetError("connection lost before the reply"))

    @contextmanager
    def once() -> Iterator[None]:
        nonlocal armed, fired
        armed, fired = True, 0
        yield
        assert (armed, fired) == (False, 1), "no write committed inside the block"

    event.listen(Session, "after_commit", after_commit)
    yield once
    event.remove(Session, "after_commit", after_commit)


def test_spend_retried_after_a_lost_commit_acknowledgement_counts_once(
    archive: Archive, lost_acknowledgement: LostAcknowledgement
) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    with lost_acknowledgement():
        archive.add_spend(run, candidates=1, seconds=2.0, dollars=0.5, tokens=100)
    spend = archive.get_run(run).spend
    assert (spend.candidates, spend.seconds, spend.dollars, spend.tokens) == (1, 2.0, 0.5, 100)


def test_an_event_retried_after_a_lost_commit_acknowledgement_is_stored_once(
    archive: Archive, lost_acknowledgement: LostAcknowledgement
) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    with lost_acknowledgement():
        event_id = archive.add_event(run, "started", "search started", {"islands": 2})
    assert [(e.id, e.kind) for e in archive.events(run)] == [(event_id, "started")]


def test_an_llm_call_retried_after_a_lost_commit_acknowledgement_is_stored_and_costed_once(
    archive: Archive, lost_acknowledgement: LostAcknowledgement
) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    with lost_acknowledgement():
        call = archive.add_llm_call(run, model="m", purpose="llm_diff", prompt="p", response="r", prompt_tokens=10,
                                    completion_tokens=5, cost_usd=0.25, latency_s=1.0, error=None)
    assert [c.id for c in archive.llm_calls(run)] == [call]
    assert archive.llm_spend(run) == (0.25, 15)


def test_a_run_created_again_after_a_lost_commit_acknowledgement_is_created_once(
    archive: Archive, lost_acknowledgement: LostAcknowledgement
) -> None:
    with lost_acknowledgement():
        run = archive.create_run("mha_fwd", {}, simulated=True)
    assert [r.id for r in archive.list_runs()] == [run]


def test_a_program_added_again_after_a_lost_commit_acknowledgement_is_reported_created(
    archive: Archive, lost_acknowledgement: LostAcknowledgement
) -> None:
    """Not a duplicate: the search would count it as one and never evaluate it."""
    run = archive.create_run("mha_fwd", {}, simulated=True)
    seed, _ = archive.add_program(run, kernel(0), operator="seed")
    with lost_acknowledgement():
        pid, created = archive.add_program(run, kernel(1), parents=[seed], operator="mutate", descriptors={"x": 1.0})
    assert created
    assert archive.program_ids(run) == [seed, pid]
    assert archive.add_program(run, kernel(1), operator="mutate") == (pid, False)


def test_each_call_is_a_write_of_its_own_even_with_the_same_arguments(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    for _ in range(2):
        archive.add_spend(run, dollars=0.5)
        archive.add_event(run, "tick", "tick")
    assert archive.get_run(run).spend.dollars == 1.0
    assert len(archive.events(run)) == 2


def test_a_caller_supplied_key_applies_its_write_once(archive: Archive) -> None:
    run = archive.create_run("mha_fwd", {}, simulated=True)
    for _ in range(2):
        archive.add_spend(run, dollars=0.5, key="spend-1")
        event_id = archive.add_event(run, "tick", "tick", key="event-1")
    assert archive.get_run(run).spend.dollars == 0.5
    assert [e.id for e in archive.events(run)] == [event_id]
