"""A tiny package registered for pickling by value by the tests."""

FACTOR = 3


def scale(x):
    return x * FACTOR
