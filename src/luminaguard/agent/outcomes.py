"""How a run ends. Each outcome is an exception raised where it happens and
caught in one place, ``Agent.run``; none of them is an error of ours."""

from __future__ import annotations


class RunEnded(Exception):
    """A run is over; ``outcome`` names how, ``message`` says it for a person."""

    outcome = "ended"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Finished(RunEnded):
    """The model answered without asking for more tools."""

    outcome = "finished"


class LimitsExceeded(RunEnded):
    """A budget (steps) ran out before the model finished."""

    outcome = "limits_exceeded"


class Denied(RunEnded):
    """An action was denied and the person (or the policy) chose to end the run."""

    outcome = "denied"


class Failed(RunEnded):
    """The model could not be queried; the journal holds everything up to here."""

    outcome = "error"
