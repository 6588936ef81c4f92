"""A submodule of a package registered for pickling by value."""

OFFSET = 100


def shift(x):
    return x + OFFSET
