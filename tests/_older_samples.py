"""Objects pickled by an older cloudpickle (a script, not a test module).

``tests/test_older_payloads.py`` runs this file as ``__main__`` with the
interpreter of an environment where an older release of the pure-Python
cloudpickle is installed, in isolated mode::

    python -I _older_samples.py PROBES_PATH OUT_DIR

Everything defined here lives in ``__main__`` (or is built dynamically), so
the old cloudpickle pickles it by value. Each sample is a list of objects,
each pickled by its own ``cloudpickle.dumps`` call into its own file
``OUT_DIR/<label>.<index>.pkl``. The probes of ``_older_probes.py`` are then
applied to the original objects, and ``OUT_DIR/manifest.pkl`` records what
they returned (and what could not be pickled, if anything), for the loading
side to compare with. Only the standard library and cloudpickle are used.
"""

import abc
import collections
import dataclasses
import enum
import functools
import importlib.util
import logging
import os
import pickle
import sys
import types
import typing
import weakref
import xml.etree.ElementTree
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    Generic,
    List,
    Literal,
    NamedTuple,
    Optional,
    Tuple,
    TypedDict,
    TypeVar,
    Union,
)

import cloudpickle

PROBES_PATH, OUT_DIR = sys.argv[1], sys.argv[2]
MANIFEST_PROTOCOL = 4

OFFSET = 1000
COUNTER = 0


def _load_probes():
    spec = importlib.util.spec_from_file_location("_older_probes", PROBES_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- functions ----------------------------------------------------------------


def make_adder(n):
    def add(x):
        return x + n

    return add


def make_fact():
    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)

    return fact


def make_empty_cell_reader():
    def read():
        return never_set

    return read
    never_set = 1  # noqa: F841 - makes never_set a cell that stays empty


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def annotated(a: int, b: str = "bb", *rest: float, c: bool = True, d=None, **kw: bytes) -> list:
    """A function with everything a signature can hold."""
    return [a, b, list(rest), c, d, sorted(kw)]


annotated.tag = {"kind": "sample", "n": 2}


def bump(n):
    global COUNTER
    COUNTER += n
    return COUNTER


def read_counter():
    return COUNTER


def parse_and_join(text, *parts):
    root = xml.etree.ElementTree.fromstring(text)
    return [child.tag for child in root], os.path.join(*parts)


def squares(n):
    for i in range(n):
        yield i * i


async def triple(x):
    return 3 * x


async def countdown(n):
    while n:
        yield n
        n -= 1


def positional_only_source():
    # Written as source so that the file still parses where "/" is new syntax.
    namespace = {}
    exec("def kinds(a, /, b, *, c=3):\n    return (a, b, c)\n", namespace)
    return namespace["kinds"]


def logged(func):
    @functools.wraps(func)
    def wrapper(*args):
        return ("logged", func(*args))

    return wrapper


@logged
def hypotenuse(a, b):
    """Length of the hypotenuse."""
    return (a * a + b * b) ** 0.5


# --- classes ------------------------------------------------------------------


class Base:
    """A base class."""

    kind = "base"

    def __init__(self, x):
        self.x = x

    def describe(self):
        return f"{self.kind}:{self.x}"


class Derived(Base):
    """Derived, with every kind of member."""

    kind = "derived"

    def describe(self):
        return "D(" + super().describe() + ")"

    @property
    def double(self):
        return self.x * 2

    @double.setter
    def double(self, value):
        self.x = value // 2

    @classmethod
    def make(cls, x):
        return cls(x)

    @staticmethod
    def helper(y):
        return y + 1

    def clone(self):
        return Derived(self.x)

    def __eq__(self, other):
        return type(other) is type(self) and other.x == self.x

    def __hash__(self):
        return hash(self.x)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def total(self):
        return self.a + self.b


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm1(self):
        return abs(self.x) + abs(self.y)


def make_counter_class(start):
    class Counter:
        def __init__(self):
            self.value = start

        def step(self):
            self.value += 1
            return self.value

    return Counter


class Meta(type):
    def __call__(cls, *args):
        instance = super().__call__(*args)
        instance.made_by = cls.__name__ + "-meta"
        return instance

    def describe(cls):
        return "meta:" + cls.__name__


class WithMeta(metaclass=Meta):
    def __init__(self, v):
        self.v = v


class SampleError(ValueError):
    def __str__(self):
        return "sample:" + super().__str__()


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self):
        raise NotImplementedError

    def twice(self):
        return 2 * self.area()


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side**2


class Virtual:
    def area(self):
        return -1


Shape.register(Virtual)


# --- enums --------------------------------------------------------------------


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"
    BLUE = "b"

    def shout(self):
        return self.name.upper() + "!"

    @classmethod
    def default(cls):
        return cls.GREEN


class Priority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


# --- dataclasses and typing ---------------------------------------------------


@dataclasses.dataclass(order=True)
class Item:
    name: str
    qty: int = 0
    tags: list = dataclasses.field(default_factory=list)
    LIMIT: ClassVar[int] = 10
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        self.qty *= scale


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: Tuple[int, ...] = ()


class Pair(NamedTuple):
    a: int
    b: str = "z"

    def swap(self):
        return (self.b, self.a)


Triple = collections.namedtuple("Triple", "x y z", defaults=(0,))


class Movie(TypedDict):
    title: str
    year: int


T = TypeVar("T")
Bounded = TypeVar("Bounded", bound=int)
Constrained = TypeVar("Constrained", str, bytes, covariant=True)


class Box(Generic[T]):
    def __init__(self, value: T):
        self.value = value

    def get(self) -> T:
        return self.value


def hinted(x: Optional[List[Box[int]]], y: Dict[str, T] = None) -> Union[int, str]:
    return len(x or ())


HINTS = [
    List[int],
    Optional[str],
    Literal["a", 1],
    ClassVar[int],
    Union[int, str, None],
    Callable[[int, str], bool],
    Callable[..., Any],
    Tuple[int, ...],
    Dict[str, List[int]],
    typing.Annotated[int, "meta"],
    typing.Final[int],
    list[int],
    dict[str, Box[int]],
    Box[T],
    Box[int],
]


# --- modules ------------------------------------------------------------------


def make_dynamic_module():
    module = types.ModuleType("older_dynamic_module", "A module made at run time.")
    exec(
        "CONST = 41\n"
        "def f(x):\n"
        "    return CONST + x\n"
        "class K:\n"
        "    def v(self):\n"
        "        return f(1)\n",
        module.__dict__,
    )
    return module


DYNAMIC_MODULE = make_dynamic_module()


def use_dynamic_module(x):
    return DYNAMIC_MODULE.f(x) + 1


def import_registered_module():
    """A real module on disk, imported, then registered for pickling by value:
    the loading side cannot import it."""
    src = os.path.join(OUT_DIR, "src")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "older_registered_module.py"), "w") as f:
        f.write(
            "SCALE = 3\n"
            "def scaled(x):\n"
            "    return SCALE * x\n"
            "class Scaler:\n"
            "    def __init__(self, k):\n"
            "        self.k = k\n"
            "    def apply(self, x):\n"
            "        return scaled(x) * self.k\n"
        )
    sys.path.insert(0, src)
    import older_registered_module

    cloudpickle.register_pickle_by_value(older_registered_module)
    return older_registered_module


REGISTERED = import_registered_module()


# --- the samples --------------------------------------------------------------


def build_samples():
    """label -> list of objects, each pickled by its own ``dumps`` call."""
    text_path = os.path.join(OUT_DIR, "text.txt")
    with open(text_path, "w") as f:
        f.write("line one\nline two\n")
    text_file = open(text_path)  # closed by main()
    text_file.readline()  # the position travels too

    ordered = collections.OrderedDict([("z", 1), ("a", 2)])
    shared = lambda v: -v  # noqa: E731
    inst = Derived(7)
    inst.extra = [1, 2]
    return text_file, {
        # First: nothing has imported xml.etree yet in the loading process.
        "submodules": [parse_and_join],
        "lambda": [lambda x: x * 2 + OFFSET],
        "closure": [make_adder(5)],
        "recursive_closure": [make_fact()],
        "empty_cell": [make_empty_cell_reader()],
        "mutual_recursion": [is_even],
        "function_attributes": [annotated],
        "shared_globals": [(bump, read_counter)],
        "generators": [(squares, triple, countdown)],
        "positional_only": [positional_only_source()],
        "wrapped": [hypotenuse],
        "partial": [functools.partial(annotated, 1, c=False)],
        "shared_in_container": [{"a": shared, "b": shared, "c": [shared, OFFSET]}],
        "code_object": [(lambda x: x + 41).__code__],
        "class_features": [Derived],
        "instance": [inst],
        "bound_method": [inst.describe],
        "slots": [Slotted],
        "same_class_twice": [Point, Point, Point(1, -2)],
        "class_in_function": [make_counter_class(10)],
        "metaclass": [WithMeta],
        "exception_class": [SampleError, SampleError("boom")],
        "abc": [(Shape, Square, Virtual)],
        "enum": [Color, Color.BLUE, Color],
        "int_enum": [Priority],
        "flag": [Perm, Perm.R | Perm.W],
        "dataclass": [Item, Item("x", 2, ["t"], 3)],
        "frozen_dataclass": [Frozen],
        "namedtuple": [(Pair, Triple), Pair(1)],
        "typeddict": [Movie],
        "generic": [Box],
        "typevar": [T, T, (Bounded, Constrained)],
        "type_hints": [HINTS],
        "function_hints": [hinted],
        "dynamic_module": [DYNAMIC_MODULE],
        "function_using_dynamic_module": [use_dynamic_module],
        "modules_by_reference": [(os.path, xml.etree.ElementTree, collections)],
        "registered_module": [(REGISTERED.scaled, REGISTERED.Scaler)],
        "mappingproxy": [types.MappingProxyType({"k": 1, "f": shared})],
        "dict_views": [
            ({"a": 1, "b": 2}.keys(), {"a": 1, "b": 2}.values(), {"a": 1, "b": 2}.items())
        ],
        "ordered_dict_views": [(ordered.keys(), ordered.values(), ordered.items())],
        "loggers": [(logging.getLogger("older.payloads"), logging.getLogger())],
        "descriptors": [
            (
                property(lambda self: 1, None, None, "doc of prop"),
                staticmethod(lambda: "static"),
                classmethod(lambda cls: cls.__name__),
                types.FunctionType.__dict__["__code__"],
            )
        ],
        "builtin_types": [
            (
                types.FunctionType,
                types.CodeType,
                types.CellType,
                types.MappingProxyType,
                types.SimpleNamespace,
                type(None),
                type(Ellipsis),
                type(NotImplemented),
            )
        ],
        "weakset": [(Point, weakref.WeakSet([Point]))],
        "memoryview": [memoryview(b"abcdef")[1:4]],
        "file": [text_file],
    }


def main():
    probes = _load_probes()
    text_file, samples = build_samples()
    missing = set(probes.PROBES) ^ set(samples)
    assert not missing, f"samples and probes disagree on {sorted(missing)}"

    failures = {}
    counts = {}
    for label, objects in samples.items():
        counts[label] = len(objects)
        for index, obj in enumerate(objects):
            try:
                payload = cloudpickle.dumps(obj)
            except Exception as exc:  # noqa: BLE001 - recorded for the test
                failures[label] = f"{type(exc).__name__}: {exc}"
                break
            with open(os.path.join(OUT_DIR, f"{label}.{index}.pkl"), "wb") as f:
                f.write(payload)

    # Probed only once everything is pickled: probes may change state.
    expected = {
        label: probes.run_probe(probes.PROBES[label], objects) for label, objects in samples.items()
    }
    text_file.close()

    manifest = {
        "cloudpickle_version": cloudpickle.__version__,
        "python": "{}.{}".format(*sys.version_info[:2]),
        "labels": list(samples),
        "counts": counts,
        "failures": failures,
        "expected": expected,
    }
    with open(os.path.join(OUT_DIR, "manifest.pkl"), "wb") as f:
        pickle.dump(manifest, f, protocol=MANIFEST_PROTOCOL)


if __name__ == "__main__":
    main()
