"""Database fixtures: every engine/config fixture runs on SQLite AND on a real PostgreSQL.

`backend` is parametrized (sqlite, postgresql); `database` is what goes into `[bot] database`: None
for SQLite (each area's config keeps its own file name) or the URL of a fresh PostgreSQL database
made for this test in one throwaway cluster per session (bot/demo/postgres.py: initdb in a temp
folder, its own port, never the system service). Without PostgreSQL installed the postgresql cases
are skipped with the reason, and the run ends with a warning saying so.

A test module that has nothing database-specific to check sets `pytestmark = pytest.mark.sqlite_only`.
"""
from __future__ import annotations

import itertools
import os

import pytest

from bot.demo.postgres import Cluster, find_bin

BACKENDS = ["sqlite", "postgresql"]
_missing: list[str] = []
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's throwaway PostgreSQL cluster (skips loudly when PostgreSQL is not installed)."""
    if find_bin() is None:
        reason = "PostgreSQL NOT INSTALLED: `make test-deps` installs Debian's postgresql; PostgreSQL cases skipped"
        _missing.append(reason)
        pytest.skip(reason)
    try:
        cluster = Cluster().start()
    except Exception as exc:  # noqa: BLE001 - reported as the skip reason
        reason = f"PostgreSQL cluster could not start ({exc}); PostgreSQL cases skipped"
        _missing.append(reason)
        pytest.skip(reason)
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """sqlite or postgresql (every test using a database fixture runs on both)."""
    return request.param


@pytest.fixture
def database(backend, request):
    """None on SQLite; on PostgreSQL the URL of a fresh database, dropped after the test."""
    if backend == "sqlite":
        yield None
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = f"t{os.getpid()}_{next(_counter)}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def pytest_collection_modifyitems(config, items):
    """Modules marked sqlite_only run once, on SQLite."""
    keep, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        on_pg = params is not None and params.params.get("backend") == "postgresql"
        (dropped if on_pg and item.get_closest_marker("sqlite_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_terminal_summary(terminalreporter):
    """Say it loudly when the PostgreSQL half of the suite did not run."""
    for reason in sorted(set(_missing)):
        terminalreporter.write_line(f"WARNING: {reason}", red=True, bold=True)
