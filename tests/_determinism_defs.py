"""Definitions whose payloads must not depend on the process or the hash
seed. Run as ``__main__`` by test_determinism.py (so that everything here is
pickled by value): prints ``{name: payload hex}`` as JSON on stdout, pickling
each object twice to show repeated dumps agree too."""

import abc
import collections
import dataclasses
import enum
import json
import sys
import types
import typing

import cloudpickle

WORDS = frozenset({"alpha", "beta", "gamma", "delta", "epsilon"})
MIXED = frozenset({1, "one", b"one", (1, "one"), 2.5, None, frozenset({"x", "y"})})
TABLE = {"k": {"v1", "v2", "v3"}}


def uses_set_constant(x):
    return x in {"red", "green", "blue", "cyan", "magenta", "yellow"}


def uses_globals(x):
    return x in WORDS or x in TABLE["k"] or x in MIXED


def make_closure():
    captured = frozenset({"one", "two", "three", "four", "five"})
    nested = {frozenset({"a", "b"}), frozenset({"c", "d"}), frozenset({"e"})}

    def closure(y):
        return y in captured or any(y in s for s in nested)

    return closure


def with_set_default(x, allowed={"p", "q", "r", "s"}, *, also=frozenset({"t", "u"})):  # noqa: B006
    return x in allowed or x in also


def recursive(n):
    return 1 if n <= 1 else n * recursive(n - 1)


def generator(names):
    for name in sorted(names & {"a1", "a2", "a3"}):
        yield name


class WithSets:
    tags = {"x1", "x2", "x3", "x4", "x5"}
    frozen = frozenset({"k1", "k2", "k3"})
    nested = (frozenset({"n1", "n2"}), [{"m1", "m2", "m3"}])

    def method(self):
        return self.tags | WithSets.frozen

    @classmethod
    def build(cls):
        return cls()

    @property
    def size(self):
        return len(self.tags)


class Slotted:
    __slots__ = {"first", "second", "third"}


class Base(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    @abc.abstractmethod
    def perimeter(self): ...

    @abc.abstractmethod
    def name(self): ...


class Square(Base):
    def area(self):
        return 4

    def perimeter(self):
        return 8

    def name(self):
        return "square"


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"

    def describe(self):
        return f"{self.name} in {sorted({'r', 'g', 'b'})}"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2
    EXEC = 4


@dataclasses.dataclass(frozen=True)
class Point:
    x: int = 0
    y: int = 1
    labels: frozenset = frozenset({"l1", "l2", "l3", "l4"})
    extra: list = dataclasses.field(default_factory=lambda: sorted({"e1", "e2"}))


class Movie(typing.TypedDict, total=False):
    title: str
    year: int
    rating: float


class Shape(typing.Protocol):
    def area(self) -> float: ...

    def perimeter(self) -> float: ...

    def corners(self) -> int: ...


T = typing.TypeVar("T", bound=int)


class Box(typing.Generic[T]):
    def __init__(self, item: T):
        self.item = item


Pair = collections.namedtuple("Pair", ["left", "right"])


class Node:
    def __init__(self, peer=None):
        self.peer = peer

    def make(self):
        return Node(Leaf())


class Leaf(Node):
    kinds = {"leaf", "terminal", "end"}


module = types.ModuleType("dynamic_things")
exec(
    "NAMES = {'m1', 'm2', 'm3', 'm4'}\n"
    "def lookup(name):\n"
    "    return name in NAMES or name in {'z1', 'z2', 'z3'}\n",
    module.__dict__,
)

OBJECTS = {
    "lambda": lambda a, b=frozenset({"d1", "d2", "d3"}): a in b,
    "set_constant": uses_set_constant,
    "globals": uses_globals,
    "closure": make_closure(),
    "set_default": with_set_default,
    "recursive": recursive,
    "generator": generator,
    "class_with_sets": WithSets,
    "instance": WithSets(),
    "slots": Slotted,
    "abc": Square,
    "enum": Color,
    "enum_member": Color.GREEN,
    "flag": Perm,
    "dataclass": Point,
    "dataclass_instance": Point(3, 4),
    "typeddict": Movie,
    "protocol": Shape,
    "typevar": T,
    "generic": Box,
    "generic_alias": Box[int],
    "namedtuple": Pair,
    "mutual": Node,
    "module": module,
    "everything": [uses_globals, WithSets, Color, Point, module],
}

if __name__ == "__main__":
    protocol = int(sys.argv[1]) if len(sys.argv) > 1 else cloudpickle.DEFAULT_PROTOCOL
    out = {}
    for name, obj in OBJECTS.items():
        first = cloudpickle.dumps(obj, protocol=protocol)
        second = cloudpickle.dumps(obj, protocol=protocol)
        if first != second:
            raise SystemExit(f"{name}: two dumps in one process differ")
        out[name] = first.hex()
    json.dump(out, sys.stdout)
