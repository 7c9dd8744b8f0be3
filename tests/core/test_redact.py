"""Secret-looking keys are masked at any depth; everything else is left as it is."""

from djtasks.core.redact import MASK, redact

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
