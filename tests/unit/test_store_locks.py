"""Locks per store and database in real folder stores: refused while held, released after,
stale ones broken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest

from orchestrator.errors import AlreadyRunning
from orchestrator.storage.local import LocalStorage
from orchestrator.storage.locks import Holder, lock_key, store_locks
from orchestrator.storage.multi import NamedStore
from tests.conftest import initialised


def folder(tmp_path: Path, name: str = "one", setting: str = "STORAGE_URL") -> NamedStore:
    return NamedStore(f"/{name}", setting, initialised(LocalStorage(tmp_path / name, setting)))


def test_a_second_job_is_refused_naming_the_holder_and_may_go_after(tmp_path):
    store = folder(tmp_path)
    with store_locks([(store, "shop")], "rekey"):
        held = json.loads(store.storage.get_bytes(lock_key("shop")))
        assert held["command"] == "rekey" and held["pid"] == os.getpid()
        with pytest.raises(AlreadyRunning) as refused, store_locks([(store, "shop")], "prune"):
            pass
        message = str(refused.value)
        assert (
            message.startswith("prune refused: rekey (pid ") and "database shop in /one" in message
        )
        with store_locks([(store, "other")], "prune"):  # another database is free
            pass
    assert list(store.storage.list("_orchestrator/locks/")) == []
    with store_locks([(store, "shop")], "prune"):
        pass


def test_refused_job_releases_what_it_took_in_other_stores(tmp_path):
    one, two = folder(tmp_path, "one"), folder(tmp_path, "two", "STORAGE_URL_2")
    with store_locks([(two, "shop")], "sync"):
        with pytest.raises(AlreadyRunning), store_locks([(one, "shop"), (two, "shop")], "prune"):
            pass
        assert list(one.storage.list("_orchestrator/locks/")) == []


def write_lock(store: NamedStore, database: str, **changes: object) -> None:
    holder = {
        **asdict(
            Holder(
                "rekey",
                socket.gethostname(),
                os.getpid(),
                "2026-01-01T00:00:00Z",
                "2999-01-01T00:00:00Z",
            )
        ),
        **changes,
    }
    store.storage.put_bytes(lock_key(database), json.dumps(holder).encode())


def dead_pid() -> int:
    child = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(child.stdout)


@pytest.mark.parametrize(
    "changes",
    [
        {"expires_at": "2020-01-01T00:00:00Z"},  # expired: its holder stopped refreshing it
        {"pid": -1},  # a process of this host that is gone
        {"host": "elsewhere", "expires_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_stale_locks_are_broken(tmp_path, changes):
    store = folder(tmp_path)
    if changes.get("pid") == -1:
        changes = {"pid": dead_pid()}
    write_lock(store, "shop", **changes)
    with store_locks([(store, "shop")], "prune"):
        assert json.loads(store.storage.get_bytes(lock_key("shop")))["command"] == "prune"


def test_a_live_lock_of_another_host_is_respected(tmp_path):
    store = folder(tmp_path)
    write_lock(store, "shop", host="elsewhere", pid=1)
    with (
        pytest.raises(AlreadyRunning, match="pid 1 on elsewhere"),
        store_locks([(store, "shop")], "prune"),
    ):
        pass


def test_a_store_that_cannot_be_written_is_skipped(tmp_path):
    unready = NamedStore("/nas", "STORAGE_URL_2", LocalStorage(tmp_path / "nas", "STORAGE_URL_2"))
    with store_locks([(unready, "shop")], "prune"):
        pass
    assert not (tmp_path / "nas").exists()
