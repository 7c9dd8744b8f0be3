"""Forked children share the parent's memory: what a child inherited must stay shared.

A cyclic collection writes the header of every object it scans, so a collection that scanned
the objects a child inherited would copy each of their pages into the child (copy-on-write):
the parent freezes its objects before its first fork, and each child freezes what it inherited.
"""

from __future__ import annotations

import pytest

from tests.testapp.tasks import full_collection_copies

pytestmark = [pytest.mark.django_db(transaction=True)]

# A full collection over the inherited objects copies tens of MiB (about 20 measured); over
# what a child allocated itself, next to nothing.
COPIED_KIB_LIMIT = 2048


def test_a_childs_full_collection_does_not_copy_the_pages_it_shares_with_its_parent(worker):
    worker("-c", "1")
    result = full_collection_copies.delay().get(timeout=30)
    assert result["frozen"] > 10_000, result  # the parent's start-up objects (Django, djtasks, the tasks)
    assert result["copied_kib"] < COPIED_KIB_LIMIT, result


def test_a_replacement_child_keeps_its_inherited_objects_out_of_collections_too(worker):
    worker("-c", "1", "--max-tasks-per-child", "1")
    first = full_collection_copies.delay().get(timeout=30)
    second = full_collection_copies.delay().get(timeout=30)
    assert first["pid"] != second["pid"], "the first child was replaced after its task"
    assert second["frozen"] >= first["frozen"], (first, second)
    assert second["copied_kib"] < COPIED_KIB_LIMIT, second
