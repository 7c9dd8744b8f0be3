"""PostgreSQL behind PgBouncer in transaction pooling mode: bin/test's PostgreSQL pass runs through it.

Transaction pooling gives each transaction whichever server connection is free, so nothing may
rely on session state: no LISTEN, no session advisory locks, no server-side cursors held across
transactions, no prepared statements (PgBouncer 1.18). The whole pass is the proof; these tests
check that the pass really goes through PgBouncer, and that a worker needs no
DISABLE_SERVER_SIDE_CURSORS of its own for its sweep.
"""

import os

import psycopg
import pytest
from django.db import connection, transaction

from djtasks import publisher
from djtasks.transport.broker import get_broker
from tests.support.ledger import wait_all_done
from tests.testapp.tasks import work

ADMIN = os.environ.get("DJTASKS_TEST_PGBOUNCER")
pytestmark = [
    pytest.mark.skipif(
        os.environ.get("DJTASKS_TEST_DB") != "postgres" or not ADMIN,
        reason="only in bin/test's PostgreSQL pass, which runs through PgBouncer (not with --postgres-direct)",
    ),
    pytest.mark.django_db(transaction=True),
]


def admin(command):
    with psycopg.connect(ADMIN, autocommit=True, prepare_threshold=None) as conn:
        cursor = conn.execute(command)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_suite_reaches_postgresql_through_pgbouncer_in_transaction_mode():
    config = {row["key"]: row["value"] for row in admin("SHOW CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert int(connection.settings_dict["PORT"]) == int(config["listen_port"])
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    connection.ensure_connection()  # this test's own connection is among PgBouncer's clients
    databases = {row["database"] for row in admin("SHOW CLIENTS")}
    assert connection.settings_dict["NAME"] in databases


@pytest.mark.timeout(180)
def test_a_worker_without_disable_server_side_cursors_sweeps_thousands_of_rows_through_pgbouncer(worker, ledger):
    keys = [f"swept{i}" for i in range(2500)]
    with transaction.atomic():
        ids = [work.delay(key, 0.0).id for key in keys]
    publisher.flush()
    get_broker().client.flushall()  # only the database knows them: the sweep must page through 2,500 rows
    url = os.environ["DATABASE_URL"].split("?")[0]
    worker("-c", "2", env={"DATABASE_URL": url})
    assert wait_all_done(ids, timeout=150)
