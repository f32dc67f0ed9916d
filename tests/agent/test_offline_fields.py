"""The offline planner reads the attempts' typed fields, not the loop's wording."""

from __future__ import annotations

from agent.offline import History, kind_of, moved_nothing
from agent.protocol import Attempt
from agent.strategies import EXPOSURE
from tools.analysis import NO_CHANGE


def attempt(kind: str | None, reason: str, kept: bool = False, stops: float = 1.0,
            moved: bool | None = None) -> Attempt:
    return Attempt(tool="exposure", params={"stops": stops}, kept=kept, kind=kind, reason=reason, moved=moved,
                   before={"mean_L": 30.0}, after={"mean_L": 30.0 if not kept else 40.0})


def test_the_typed_kind_decides_whatever_the_reason_says() -> None:
    assert kind_of(attempt("lock", "the edit went too far (reworded)")) == "lock"
    assert kind_of(attempt("naturalness", "blown highlights")) == "lock"  # a smaller step may pass
    assert kind_of(attempt("score", "structure similarity and the lock are words here, not the cause")) == "score"
    assert kind_of(attempt("error", "")) == "error"


def test_a_lock_rollback_halves_the_next_step_however_it_is_worded() -> None:
    for reason in ("structure similarity to the original fell to 0.71", "too far from the original"):
        hist = History([attempt("lock", reason, stops=2.0)])
        assert hist.cap(EXPOSURE, "mean_L", 60.0, 1.0) == 1.0  # half of the 2-stop step


def test_an_attempt_without_a_kind_is_read_from_its_fields_never_its_words() -> None:
    assert kind_of(attempt(None, "structure similarity to the original fell to 0.712, below the lock 0.80")) == "score"
    assert kind_of(attempt(None, "rolled back", kept=True)) == "kept"
    assert kind_of(Attempt(tool="exposure", params={}, kept=False, reason="structure lock")) == "error"  # no after


def test_a_kept_step_that_moved_nothing_counts_as_a_failure() -> None:
    still = attempt("kept", "L* 30->40 (reworded)", kept=True, moved=False)
    moved = attempt("kept", NO_CHANGE, kept=True, moved=True)
    assert moved_nothing(still) and not moved_nothing(moved)
    assert History([still]).failures(EXPOSURE, "mean_L", 50.0) == 1
    assert History([moved]).failures(EXPOSURE, "mean_L", 50.0) == 0
