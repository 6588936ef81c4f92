"""Module-level functions and classes that ``pickle`` can find by reference.

The tests put ``tests/`` on ``sys.path`` (pytest does it for a rootless test
directory; the subprocess tests set ``PYTHONPATH``), so everything here is
importable as ``_importable.<qualname>`` in the test process and in children.
"""

import dataclasses
import enum


def module_function(x):
    """A plain module-level function."""
    return x + 1


class ModuleClass:
    """A plain module-level class with value equality."""

    def __init__(self, value=None):
        self.value = value

    def __eq__(self, other):
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __repr__(self):
        return f"ModuleClass({self.value!r})"


class Outer:
    """Nested classes and functions: found through their ``__qualname__``."""

    class Inner:
        class Deepest:
            pass

        def method(self):
            return "inner"

    @staticmethod
    def static_fn():
        return "static"


class Ñandú:  # noqa: N801 - a non-ASCII global name on purpose
    """A class whose name cannot be encoded in ASCII."""


def función_ñ():
    """A function whose name cannot be encoded in ASCII."""


class Point:
    """A small value class pickled through the default reduce protocol."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"


@dataclasses.dataclass(frozen=True)
class FrozenRecord:
    name: str
    tags: tuple = ()


class Color(enum.Enum):
    RED = 1
    GREEN = 2


def set_state(obj, state):
    """A ``state_setter`` usable as 6th item of a reduce tuple."""
    obj.__dict__.update(state)
    obj.via_state_setter = True


def sample_data():
    """Deterministic nested data shared by the subprocess tests."""
    shared = [1, 2, 3]
    recursive = ["head"]
    recursive.append(recursive)
    return {
        "none": None,
        "bools": [True, False],
        "ints": [0, -1, 255, 256, 2**31 - 1, -(2**31), 2**63, 2**64 + 1, -(10**40)],
        "floats": [0.0, -0.0, 1.5, float("inf"), -float("inf"), 1e-310],
        "complex": 3 - 4j,
        "text": ["", "ascii", "é", "日本語", "😀", "\\", "\n\r\x00\x1a", "\ud800"],
        "bytes": [b"", b"\x00\xff", bytes(range(256))],
        "bytearray": bytearray(b"mutable"),
        "tuple": (1, (2, (3,))),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "shared": [shared, shared],
        "recursive": recursive,
        "point": Point(1, [shared]),
        "record": FrozenRecord("r", ("x", "y")),
        "color": Color.GREEN,
        "function": module_function,
        "class": Outer.Inner,
        "big": "x" * 100_000,
    }


def sample_data_equal(a, b):
    """Compare two ``sample_data()`` results (the recursive list defeats ``==``)."""
    a = dict(a)
    b = dict(b)
    ra, rb = a.pop("recursive"), b.pop("recursive")
    if not (ra[0] == rb[0] == "head" and ra[1] is ra and rb[1] is rb):
        return False
    if not (a["shared"][0] is a["shared"][1] and b["shared"][0] is b["shared"][1]):
        return False
    return a == b
