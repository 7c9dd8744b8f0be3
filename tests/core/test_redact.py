"""Secret-looking keys are masked at any depth, and their values wherever they occur in free text."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from djtasks.core.redact import MASK, MIN_TEXT_SECRET, WITHHELD, Redactor, redact, secret_values

PATTERNS = ("password", "token", "api_key")


def test_values_under_matching_keys_are_masked_at_any_depth():
    data = [{"user": "ann", "Password": "hunter2", "nested": {"refresh_token": "abc", "items": [{"api_key": 1}]}}]
    assert redact(data, PATTERNS) == [
        {"user": "ann", "Password": MASK, "nested": {"refresh_token": MASK, "items": [{"api_key": MASK}]}}
    ]


def test_a_whole_secret_subtree_is_masked_and_the_input_is_not_changed():
    data = {"token": {"a": 1}, "n": 2}
    assert redact(data, PATTERNS) == {"token": MASK, "n": 2}
    assert data == {"token": {"a": 1}, "n": 2}


def test_plain_values_and_an_empty_pattern_list_pass_through():
    assert redact("password", PATTERNS) == "password"
    assert redact({"password": "x"}, ()) == {"password": "x"}


# Free text is masked by value: the values found under secret keys of the task's data.

SECRETS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=MIN_TEXT_SECRET)
TEXT = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(secret=SECRETS, before=TEXT, after=TEXT)
def test_a_secret_value_is_masked_in_text_as_written_json_escaped_or_repr_escaped(secret, before, after):
    redactor = Redactor.of(PATTERNS, {"kwargs": {"api_key": secret}})
    for form in (secret, json.dumps(secret), repr(secret), secret.upper()):
        shown = redactor.text(before + form + after)
        assert secret.lower() not in shown.lower() or shown == WITHHELD
        assert json.dumps(secret)[1:-1] not in shown and repr(secret)[1:-1] not in shown


@settings(max_examples=100, deadline=None)
@given(secret=st.text(min_size=1, max_size=MIN_TEXT_SECRET - 1), text=TEXT)
def test_a_text_holding_a_short_secret_is_withheld_whole(secret, text):
    shown = Redactor.of(PATTERNS, {"password": secret}).text(text + secret)
    assert shown == WITHHELD


def test_secrets_are_every_scalar_under_a_secret_key_at_any_depth():
    data = {"token": {"a": "one", "b": [2, None, True]}, "user": "ann", "items": [{"Password": "three"}]}
    assert secret_values(data, PATTERNS) == {"one", "2", "three"}


def test_text_without_secrets_or_with_no_secret_values_is_left_alone():
    assert Redactor.of(PATTERNS, {"user": "ann"}).text("ann failed") == "ann failed"
    assert Redactor.of(PATTERNS, {"token": ""}).text("nothing") == "nothing"


def test_results_and_progress_are_masked_by_key_and_by_value():
    redactor = Redactor.of(PATTERNS, {"token": "s3cr3t-value"})
    assert redactor.data({"echo": "got s3cr3t-value", "token": "s3cr3t-value", "n": [1, "S3CR3T-VALUE"]}) == {
        "echo": f"got {MASK}",
        "token": MASK,
        "n": [1, MASK],
    }


def test_a_raw_message_is_masked_by_key_if_json_and_cut_at_the_first_secret_key_if_not():
    redactor = Redactor.of(PATTERNS)
    assert json.loads(redactor.raw('{"kwargs": {"api_key": "k-1234", "note": "k-1234"}}')) == {
        "kwargs": {"api_key": MASK, "note": MASK}
    }
    assert redactor.raw('{"kwargs": {"user": "ann", "api_key": "k-12') == f'{{"kwargs": {{"user": "ann", "{MASK}'
    assert redactor.raw('"{\\"password\\": \\"x\\"}"') == f'"{{\\"{MASK}"'
    assert redactor.raw("2:5") == "2:5" and redactor.raw("\\xff") == "\\xff"
