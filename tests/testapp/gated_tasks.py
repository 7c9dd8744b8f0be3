"""Tasks of issue 21 (unique, debounced, keyed rate-limited and capped), run by the suite's workers.

Each run writes "start <key> <pid> <time>" and "end <key> <pid> <time>" to the ledger, the
format tests/support/ledger.py reads, so overlaps and repeats can be measured.
"""

import os
import time
from datetime import timedelta

from djtasks import task

from .tasks import ledger


def _run(key, seconds=0.0):
    ledger(f"start {key} {os.getpid()} {time.time():.3f}")
    if seconds:
        time.sleep(seconds)
    ledger(f"end {key} {os.getpid()} {time.time():.3f}")
    return key


@task(unique_for=60)
def unique_work(key, seconds=0.0):
    return _run(key, seconds)


@task(unique_for=timedelta(seconds=60), unique_key="invoice:{invoice_id}")
def send_invoice(invoice_id, note=""):
    return _run(f"invoice-{invoice_id}-{note}")


@task(unique_for=60, max_retries=2, default_retry_delay=0.3, bind=True)
def unique_flaky(self, key):
    _run(f"{key}-{self.request.retries}")
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("first attempt fails"))
    return key


@task(unique_for=60)
def unique_fail(key):
    _run(key)
    raise ValueError(f"failed {key}")


@task(debounce=5)
def debounced(value):
    return _run(f"debounced-{value}")


@task(debounce=1, unique_key="{user}")
def debounced_per_user(user, value):
    return _run(f"{user}-{value}")


@task(rate_limit="2/s", rate_limit_key="{customer}")
def per_customer(customer, n):
    return _run(f"{customer}-{n}")


@task(concurrency=1)
def capped(key, seconds=0.3):
    return _run(key, seconds)


@task(concurrency=2)
def capped_two(key, seconds=0.3):
    return _run(key, seconds)


@task(concurrency=1, concurrency_key=lambda customer, **kwargs: customer)
def capped_per_customer(customer, key, seconds=0.3):
    return _run(key, seconds)


def _exiting_key(customer, **kwargs):
    """A key function that raises what task code should not (SystemExit) for one customer."""
    if customer == "exit":
        raise SystemExit(3)
    return customer


@task(concurrency=1, concurrency_key=_exiting_key)
def capped_exiting_key(customer, key):
    return _run(key)
