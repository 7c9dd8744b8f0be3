"""Task ids are what str(uuid.uuid4()) would give for the same random bytes."""

from __future__ import annotations

import os
import uuid
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.core import ids


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_an_id_is_uuid4_s_text_of_the_same_random_bytes(raw):
    with mock.patch.object(ids.os, "urandom", return_value=raw) as urandom:
        made = ids.new_id()
    urandom.assert_called_once_with(16)
    assert made == str(uuid.UUID(bytes=raw, version=4))


def test_ids_are_version_4_uuids_and_a_forked_child_does_not_repeat_its_parent_s():
    made = {ids.new_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(uuid.UUID(x).version == 4 and uuid.UUID(x).variant == uuid.RFC_4122 for x in made)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(writer, ",".join(ids.new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = set(os.read(reader, 1 << 16).decode().split(","))
    os.close(reader)
    parent = {ids.new_id() for _ in range(50)}
    assert len(child) == 50 and not child & parent
