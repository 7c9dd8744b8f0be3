"""The settings schema: one declaration per key gives its default, the types it accepts and its rules."""

from dataclasses import dataclass

from djtasks.core.conf import Settings
from djtasks.core.schema import NUMBER, NoneType, Relation, at_least, problems, setting

BELOW_HARD = Relation(
    "HARD",
    lambda soft, hard: soft < hard,
    "test.E001",
    "DJTASKS[{key!r}] is {value}; it must be below {other} ({other_value}).",
)


@dataclass(frozen=True)
class Limits:
    SOFT: float | None = setting((*NUMBER, NoneType), BELOW_HARD)
    HARD: float | None = setting((*NUMBER, NoneType), default=10.0)
    COUNT: int = setting(int, at_least(1, "test.E002"), default=1)


def ids(raw):
    return [problem.check_id for problem in problems(raw, Limits)]


def test_the_defaults_come_from_the_declaration():
    assert Limits() == Limits(SOFT=None, HARD=10.0, COUNT=1)


def test_the_djtasks_defaults_pass_their_own_rules():
    assert problems({}, Settings) == []


def test_a_relation_between_two_keys_compares_their_values_defaults_included():
    assert ids({"SOFT": 5}) == []
    [problem] = problems({"SOFT": 20}, Limits)
    assert (problem.check_id, problem.message) == ("test.E001", "DJTASKS['SOFT'] is 20; it must be below HARD (10.0).")


def test_a_relation_is_skipped_when_either_key_is_unset_or_of_the_wrong_type():
    assert ids({"SOFT": 20, "HARD": None}) == []
    assert ids({"SOFT": 20, "HARD": "x"}) == ["djtasks.E003"]


def test_a_range_applies_once_the_type_is_right():
    assert ids({"COUNT": 0}) == ["test.E002"]
    assert ids({"COUNT": True}) == ["djtasks.E003"]
    assert ids({"COUNT": "1"}) == ["djtasks.E003"]
