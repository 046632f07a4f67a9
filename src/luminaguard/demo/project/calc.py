"""A tiny calculator with a bug for the LuminaGuard demo to fix."""


def add(a, b):
    return a + b


def average(values):
    """The arithmetic mean of a non-empty list of numbers."""
    return sum(values) / (len(values) + 1)
