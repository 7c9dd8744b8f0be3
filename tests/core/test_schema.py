"""The settings schema: one declaration per key gives its default, the types it accepts and its rules."""

from dataclasses import dataclass

from djtasks.core.conf import Settings
from djtasks.core.schema import NUMBER, NoneType, Relation, between, problems, setting

BELOW_HARD = Relation(
    "HARD",
    lambda soft, hard: soft < hard,
    "test.E001",
    "{key} is {value}; it must be below {other} ({other_value}).",
    valid="below HARD",
)


@dataclass(frozen=True)
class Limits:
    SOFT: float | None = setting((*NUMBER, NoneType), between(0, 100, "test.E003", above=True), BELOW_HARD)
    HARD: float | None = setting((*NUMBER, NoneType), between(0, 100, "test.E003", above=True), default=10.0)
    COUNT: int = setting(int, between(1, 9, "test.E002"), default=1)


def ids(raw):
    return [problem.check_id for problem in problems(raw, Limits)]


def test_the_defaults_come_from_the_declaration():
    assert Limits() == Limits(SOFT=None, HARD=10.0, COUNT=1)


def test_the_djtasks_defaults_pass_their_own_rules():
    assert problems({}, Settings) == []


def test_a_relation_between_two_keys_compares_their_values_defaults_included():
    assert ids({"SOFT": 5}) == []
    [problem] = problems({"SOFT": 20}, Limits)
    assert (problem.check_id, problem.message) == (
        "test.E001",
        "DJTASKS['SOFT'] is 20; it must be below DJTASKS['HARD'] (10.0).",
    )
    assert problem.hint == "Valid: int or float above 0 and at most 100, below HARD, or None. Default: None."


def test_a_relation_is_skipped_when_either_key_is_unset_of_the_wrong_type_or_out_of_range():
    assert ids({"SOFT": 20, "HARD": None}) == []
    assert ids({"SOFT": 20, "HARD": "x"}) == ["djtasks.E003"]
    assert ids({"SOFT": 20, "HARD": 200}) == ["test.E003"]


def test_a_range_applies_once_the_type_is_right_and_a_bool_is_never_a_number():
    assert ids({"COUNT": 0}) == ["test.E002"]
    assert ids({"COUNT": True}) == ["djtasks.E003"]
    assert ids({"SOFT": True}) == ["djtasks.E003"]
    assert ids({"COUNT": "1"}) == ["djtasks.E003"]


def test_nan_infinity_and_huge_numbers_are_out_of_every_range():
    assert ids({"SOFT": float("nan")}) == ["test.E003"]
    assert ids({"HARD": float("inf")}) == ["test.E003"]
    assert ids({"COUNT": 10**400}) == ["test.E002"]


def test_labels_name_keys_given_otherwise_and_long_values_are_cut_short():
    [problem] = problems({"SOFT": 20}, Limits, labels={"SOFT": "--soft", "HARD": "--hard"})
    assert problem.message == "--soft is 20; it must be below --hard (10.0)."
    [problem] = problems({"COUNT": "x" * 1000}, Limits)
    assert len(problem.message) < 150 and problem.hint == "Valid: int from 1 to 9. Default: 1."
