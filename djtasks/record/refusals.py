"""Tell a write the database refused because of its data from one it could not take at all (an outage).

A refusal is final for that data: writing it again fails again, so the attempt ends with the
reason. An outage (connection lost, server restarting: OperationalError, InterfaceError) passes:
the write is tried again while the lease keeps the task. Django wraps the drivers' errors
(psycopg's DataError for a NUL, StringDataRightTruncation, NumericValueOutOfRange; sqlite3's
IntegrityError for a constraint or trigger) in DataError and IntegrityError; a driver refuses
some data before sending it (UnicodeEncodeError for a surrogate, OverflowError for an int that
does not fit, ValueError).
"""

from __future__ import annotations

from django.db import DataError, IntegrityError, InterfaceError, OperationalError

REFUSALS: tuple[type[BaseException], ...] = (DataError, IntegrityError, UnicodeError, OverflowError, ValueError)
OUTAGES: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


def refused(exc: BaseException) -> bool:
    """Say whether a write failed because of the data it carried, never because the database was unavailable."""
    return isinstance(exc, REFUSALS) and not isinstance(exc, OUTAGES)
