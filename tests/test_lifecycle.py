"""The lifecycle of DESIGN.md: every legal move works, every other is refused clearly."""

from __future__ import annotations

import pytest

from gateway.core.lifecycle import ALLOWED, IllegalTransition, Status, check

HAPPY_PATH = [
    "received",
    "classified",
    "needs_review",
    "ready",
    "dispatched",
    "accepted",
    "in_progress",
    "resolved",
    "closed",
]


def test_happy_path_is_allowed():
    for current, target in zip(HAPPY_PATH, HAPPY_PATH[1:], strict=False):
        assert check("ZW1", current, target) == Status(target)
    assert check("ZW1", "classified", "ready") == Status.READY  # confident: no review


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("received", "dispatched"),
        ("closed", "in_progress"),
        ("merged", "ready"),
        ("rejected", "ready"),
        ("needs_review", "dispatched"),
        ("resolved", "accepted"),
    ],
)
def test_illegal_moves_are_refused_naming_the_case_and_the_allowed_moves(current, target):
    with pytest.raises(IllegalTransition) as err:
        check("ZW20261127000001", current, target)
    message = str(err.value)
    assert "ZW20261127000001" in message and current in message and target in message
    assert "allowed" in message


def test_every_status_has_a_rule_and_terminal_states_have_no_exit():
    assert set(ALLOWED) == set(Status)
    for terminal in (Status.CLOSED, Status.REJECTED, Status.MERGED):
        assert not ALLOWED[terminal]


def test_unknown_status_is_an_error():
    with pytest.raises(ValueError):
        check("ZW1", "received", "teleported")
