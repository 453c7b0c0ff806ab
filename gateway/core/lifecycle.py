"""The report lifecycle of DESIGN.md, enforced in one table.

received → classified → (needs_review) → ready → dispatched → accepted → in_progress →
resolved → closed, plus the end states rejected, spam and merged.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    RECEIVED = "received"
    CLASSIFIED = "classified"
    NEEDS_REVIEW = "needs_review"
    READY = "ready"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    SPAM = "spam"
    MERGED = "merged"


S = Status
_ENDS = {S.REJECTED, S.MERGED}

ALLOWED: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.CLASSIFIED, S.NEEDS_REVIEW, S.SPAM} | _ENDS),
    S.CLASSIFIED: frozenset({S.NEEDS_REVIEW, S.READY, S.SPAM} | _ENDS),
    # A moderator confirms (ready), or the dispatch system returns a case for reclassification.
    S.NEEDS_REVIEW: frozenset({S.READY, S.SPAM} | _ENDS),
    S.READY: frozenset({S.DISPATCHED, S.NEEDS_REVIEW} | _ENDS),
    S.DISPATCHED: frozenset({S.ACCEPTED, S.IN_PROGRESS, S.RESOLVED, S.NEEDS_REVIEW, S.REJECTED}),
    S.ACCEPTED: frozenset({S.IN_PROGRESS, S.RESOLVED, S.NEEDS_REVIEW, S.REJECTED}),
    S.IN_PROGRESS: frozenset({S.RESOLVED, S.REJECTED}),
    # A resident's bad rating or a dispatch callback may reopen a resolved case.
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset(),
    S.REJECTED: frozenset(),
    S.SPAM: frozenset({S.NEEDS_REVIEW}),  # a moderator may undo a spam mark
    S.MERGED: frozenset(),
}

OPEN = frozenset(set(Status) - {S.CLOSED, S.REJECTED, S.SPAM, S.MERGED})


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow."""

    def __init__(self, case_number: str, current: Status, target: Status) -> None:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none (final state)"
        super().__init__(
            f"report {case_number} cannot move from {current} to {target}; allowed from {current}: {allowed}"
        )
        self.case_number = case_number
        self.current = current
        self.target = target


def check(case_number: str, current: str, target: str) -> Status:
    cur, tgt = Status(current), Status(target)
    if tgt not in ALLOWED[cur]:
        raise IllegalTransition(case_number, cur, tgt)
    return tgt
