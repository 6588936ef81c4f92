"""Named workloads for the pickling benchmarks.

Each workload builds one object; the benchmark times ``dumps(obj, protocol)``
for each implementation (this project's ``cloudpickle.dumps``, the standard
``pickle.dumps`` and the reference cloudpickle's ``dumps``) on the same object.

This file is imported as the top-level module ``workloads`` (``benches/`` is on
``sys.path`` when the benchmark scripts run), so the classes defined here are
importable and every implementation pickles them *by reference*.

Adding a workload: write a function returning the object and decorate it with
``@workload(...)``. For objects the standard ``pickle`` cannot serialize
(closures, classes defined at run time), pass ``pickle_ok=False``: the pickle
column then shows "n/a" and only the project and the reference are compared.
Pass ``same=`` when ``==`` cannot tell whether a loaded copy is right (functions,
classes); pass ``timer=`` to time something other than ``dumps(obj, protocol)``.
"""

import dataclasses
import math
import random
from time import perf_counter

__all__ = [
    "WORKLOADS",
    "Point",
    "Record",
    "SlotPoint",
    "SlotDictPoint",
    "StatePoint",
    "Workload",
    "time_dumps",
    "workload",
]


def time_dumps(loops, dumps, obj, protocol):
    """Default timer: ``loops`` calls of ``dumps(obj, protocol)``, in seconds."""
    range_it = range(loops)
    t0 = perf_counter()
    for _ in range_it:
        dumps(obj, protocol)
    return perf_counter() - t0


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    make: object  # () -> the object to pickle
    doc: str = ""
    # Target for time(project) / time(pickle.dumps), or None (information only).
    target: object = None
    # False when the standard pickle cannot serialize the object at all.
    pickle_ok: bool = True
    # (original, loaded) -> bool; None means ``original == loaded``.
    same: object = None
    # (loops, dumps, obj, protocol) -> seconds; None means ``time_dumps``.
    timer: object = None
    # Groups let the driver select several workloads at once (--workloads by_value).
    groups: tuple = ()


WORKLOADS = {}


def workload(doc="", *, target=None, pickle_ok=True, same=None, timer=None, groups=()):
    """Register the decorated function as the workload of the same name."""

    def register(make):
        name = make.__name__
        if name in WORKLOADS:
            raise ValueError(f"duplicate workload {name!r}")
        WORKLOADS[name] = Workload(
            name=name,
            make=make,
            doc=doc,
            target=target,
            pickle_ok=pickle_ok,
            same=same,
            timer=timer,
            groups=tuple(groups),
        )
        return make

    return register


# ---------------------------------------------------------------------------
# Importable classes (pickled by reference by every implementation).
# ---------------------------------------------------------------------------


class Point:
    """An ordinary class with three instance attributes."""

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    def __eq__(self, other):
        return type(other) is Point and self.__dict__ == other.__dict__

    __hash__ = None


@dataclasses.dataclass
class Record:
    """An ordinary dataclass with three fields."""

    ident: int
    score: float
    name: str


def _slots_eq(self, other):
    return type(other) is type(self) and all(
        getattr(self, n, None) == getattr(other, n, None) for n in self.__slots__
    )


class SlotPoint:
    """A class with three slots and no ``__dict__``."""

    __slots__ = ("x", "y", "label")

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    __eq__ = _slots_eq
    __hash__ = None


class SlotDictPoint:
    """A class with two slots and a ``__dict__`` too."""

    __slots__ = ("x", "y", "__dict__")

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    def __eq__(self, other):
        return _slots_eq(self, other) and self.__dict__ == other.__dict__

    __hash__ = None


class StatePoint:
    """An ordinary class whose ``__getstate__`` returns a tuple."""

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    def __getstate__(self):
        return (self.x, self.y, self.label)

    def __setstate__(self, state):
        self.x, self.y, self.label = state

    def __eq__(self, other):
        return type(other) is StatePoint and self.__dict__ == other.__dict__

    __hash__ = None


# ---------------------------------------------------------------------------
# Builtin data and instances: pickle can do these, the targets apply.
# ---------------------------------------------------------------------------


@workload(
    "dict of 50,000 small lists of ints, floats, strs and tuples",
    target=0.5,
    groups=("data",),
)
def nested_data():
    return {f"key{i}": [i, i * 0.25, f"value {i}", (i, -i)] for i in range(50_000)}


@workload("one tiny tuple (1, 2.0, 'abc'), per dumps call", target=0.6, groups=("data",))
def tiny_tuple():
    return (1, 2.0, "abc")


@workload(
    "list of 50,000 instances of an importable class with 3 attributes",
    target=0.8,
    groups=("instances",),
)
def instances():
    return [Point(i, i * 0.5, f"p{i}") for i in range(50_000)]


@workload(
    "list of 50,000 instances of an importable dataclass with 3 fields",
    target=0.8,
    groups=("instances",),
)
def dataclass_instances():
    return [Record(i, i / 3.0, f"r{i}") for i in range(50_000)]


@workload(
    "list of 50,000 instances of an importable class with 3 __slots__",
    target=0.5,
    groups=("instances",),
)
def slotted_instances():
    return [SlotPoint(i, i * 0.5, f"p{i}") for i in range(50_000)]


@workload(
    "list of 50,000 instances of an importable class with 2 __slots__ and a __dict__",
    groups=("instances",),
)
def slotted_dict_instances():
    return [SlotDictPoint(i, i * 0.5, f"p{i}") for i in range(50_000)]


@workload(
    "list of 50,000 instances of an importable class defining __getstate__/__setstate__",
    groups=("instances",),
)
def getstate_instances():
    return [StatePoint(i, i * 0.5, f"p{i}") for i in range(50_000)]


@workload("list of 1,000,000 ints and floats, alternating", groups=("data",))
def list_of_ints_floats():
    return [i if i % 2 else i * 0.5 for i in range(1_000_000)]


@workload("list of 10,000 distinct 1 KiB bytes objects", groups=("data",))
def bytes_10k():
    rng = random.Random(1234)
    return [rng.getrandbits(8 * 1024).to_bytes(1024, "little") for _ in range(10_000)]


# ---------------------------------------------------------------------------
# Code pickled by value: the standard pickle cannot do these ("n/a").
# ---------------------------------------------------------------------------


def _make_closure():
    offset = 3
    scale = 2.5

    def scaled_floor(x):
        return math.floor(x * scale) + offset

    return scaled_floor


def _same_closure(original, loaded):
    return all(original(x) == loaded(x) for x in (0, 1.5, -7))


@workload(
    "a closure (2 cells, uses a module global), pickled by value",
    pickle_ok=False,
    same=_same_closure,
    groups=("by_value",),
)
def closure():
    return _make_closure()


def _make_dynamic_class():
    class Dynamic:
        kind = "dynamic"

        def __init__(self, x):
            self.x = x

        def double(self):
            return 2 * self.x

    return Dynamic


def _same_class(original, loaded):
    return loaded.__name__ == original.__name__ and loaded(21).double() == 42


@workload(
    "a class defined inside a function, pickled by value",
    pickle_ok=False,
    same=_same_class,
    groups=("by_value",),
)
def dynamic_class():
    return _make_dynamic_class()


def _make_closures(n):
    def factory(i):
        bias = float(i)

        def shifted(x):
            return math.floor(x) + bias

        return shifted

    return [factory(i) for i in range(n)]


def _same_functions(original, loaded):
    return all(o(2.5) == l(2.5) for o, l in zip(original, loaded))


def time_each(loops, dumps, objs, protocol):
    """``loops`` rounds of one ``dumps`` call per item of ``objs``."""
    t0 = perf_counter()
    for _ in range(loops):
        for obj in objs:
            dumps(obj, protocol)
    return perf_counter() - t0


@workload(
    "500 distinct closures, each pickled with its own dumps call "
    "(target: >= 10x faster than the reference)",
    pickle_ok=False,
    same=_same_functions,
    timer=time_each,
    groups=("by_value",),
)
def closures_500_each():
    return _make_closures(500)


@workload(
    "500 lambdas in one dumps call (target: >= 5x faster than the reference)",
    pickle_ok=False,
    same=_same_functions,
    groups=("by_value",),
)
def lambdas_500_one_dumps():
    return [lambda x, i=i: x * i for i in range(500)]


def _same_tasks(original, loaded):
    return all(
        o[0](*o[1], **o[2]) == l[0](*l[1], **l[2]) for o, l in zip(original[:50], loaded[:50])
    )


@workload(
    "Dask-like task list: 5,000 (functools.partial(closure, i), args, kwargs) "
    "(target: >= 5x faster than the reference)",
    pickle_ok=False,
    same=_same_tasks,
    groups=("by_value",),
)
def dask_task_list():
    import functools

    offset = 7

    def task(i, x, scale=1):
        return (i + x + offset) * scale

    return [(functools.partial(task, i), (i,), {"scale": 2}) for i in range(5_000)]


def _make_classes(n, start=0):
    classes = []
    for i in range(start, start + n):

        class Shape:
            __slots__ = ("w", "h")
            sides = i

            def __init__(self, w, h):
                self.w = w
                self.h = h

            @property
            def area(self):
                return self.w * self.h

            def scaled(self, k):
                return type(self)(self.w * k, self.h * k)

        classes.append(Shape)
    return classes


def _same_classes(original, loaded):
    return len(original) == len(loaded) and all(
        o.sides == l.sides and l(2, 3).scaled(2).area == 24 for o, l in zip(original, loaded)
    )


@workload(
    "200 distinct dynamic classes (methods, property, slots), each pickled with its own "
    "dumps call (target: >= 10x faster than the reference)",
    pickle_ok=False,
    same=_same_classes,
    timer=time_each,
    groups=("by_value",),
)
def classes_200_each():
    return _make_classes(200)


def _same_instances(original, loaded):
    return len(original) == len(loaded) and all(
        o.double() == l.double() for o, l in zip(original[:100], loaded[:100])
    )


@workload(
    "20,000 instances of one dynamic class in one dumps call "
    "(target: >= 5x faster than the reference)",
    pickle_ok=False,
    same=_same_instances,
    groups=("by_value",),
)
def dynamic_instances_20k():
    cls = _make_dynamic_class()
    return [cls(i) for i in range(20_000)]


def _make_dynamic_slot_class():
    class DynamicSlots:
        __slots__ = ("x", "y", "z")

        def __init__(self, x):
            self.x = x
            self.y = -x
            self.z = f"z{x}"

        def double(self):
            return 2 * self.x

    return DynamicSlots


@workload(
    "20,000 instances of one dynamic class with 3 __slots__ in one dumps call "
    "(target: >= 5x faster than the reference)",
    pickle_ok=False,
    same=_same_instances,
    groups=("by_value",),
)
def dynamic_slotted_instances_20k():
    cls = _make_dynamic_slot_class()
    return [cls(i) for i in range(20_000)]


_SCALE = 1.5
_LIMITS = (0, 100)


def _varied_closures(n):
    """Closures of ten shapes, each built ``n / 10`` times (distinct
    closures sharing their code, as a program's tasks do)."""

    def documented(i):
        bias = i

        def f(x):
            """A docstring, and globals: math, _SCALE."""
            return math.floor(x * _SCALE) + bias

        return f

    def keyword_only(i):
        def f(x, *, scale=_SCALE, offset=i):
            return x * scale + offset

        return f

    def defaults(i):
        def f(x, y=i, z=(1, 2.0, "three")):
            return x + y + len(z)

        return f

    def imports(i):
        def f(x):
            import os.path

            return os.path.join(str(x), str(i))

        return f

    def captured_list(i):
        seen = [i, i + 1]

        def f(x):
            seen.append(x)
            return len(seen)

        return f

    def nested(i):
        def f(x):
            def inner(y):
                return y * 2 + i

            return inner(x) + inner(1)

        return f

    def comprehension(i):
        def f(x):
            return sum([v * i for v in range(int(x))]) + len({v: v for v in (1, 2)})

        return f

    def frozenset_const(i):
        def f(x):
            return (x in {1, 2, 3, 5, 8}) + (x not in {"a", "b"}) + i

        return f

    def shared_names(i):
        lo, hi = _LIMITS

        def f(x):
            return min(max(x, lo), hi) * _SCALE + math.pi + i

        return f

    def shared_names_too(i):
        def f(x):
            lo, hi = _LIMITS
            return math.floor(min(max(x, lo), hi) / _SCALE) - i

        return f

    shapes = (
        documented,
        keyword_only,
        defaults,
        imports,
        captured_list,
        nested,
        comprehension,
        frozenset_const,
        shared_names,
        shared_names_too,
    )
    return [shapes[k % len(shapes)](k) for k in range(n)]


def _same_varied(original, loaded):
    # Called as many times on both sides: captured lists grow alike.
    return len(original) == len(loaded) and all(
        o(2.5) == l(2.5) and o.__doc__ == l.__doc__ and o.__defaults__ == l.__defaults__
        for o, l in zip(original, loaded)
    )


@workload(
    "500 closures of ten shapes (docstring, keyword-only args, defaults, import in the "
    "body, captured list, nested function, comprehensions, frozenset constants, shared "
    "globals), each pickled with its own dumps call (target: >= 12x faster than the "
    "reference)",
    pickle_ok=False,
    same=_same_varied,
    timer=time_each,
    groups=("by_value",),
)
def closures_varied_each():
    return _varied_closures(500)


def time_loads(loops, dumps, obj, protocol):
    """``loops`` calls of ``pickle.loads`` on the payload ``dumps`` made of
    ``obj`` (each implementation loads its own payload, with its own
    reconstructors)."""
    import pickle

    payload = dumps(obj, protocol)
    loads = pickle.loads
    t0 = perf_counter()
    for _ in range(loops):
        loads(payload)
    return perf_counter() - t0


@workload(
    "loading one payload of 500 closures (target: >= 1.5x faster than the reference)",
    pickle_ok=False,
    same=_same_functions,
    timer=time_loads,
    groups=("by_value", "load"),
)
def closures_500_load():
    return _make_closures(500)


@workload(
    "loading one payload of 200 dynamic classes (target: >= 1.5x faster than the reference)",
    pickle_ok=False,
    same=_same_classes,
    timer=time_loads,
    groups=("by_value", "load"),
)
def classes_200_load():
    return _make_classes(200)


# Class definitions not seen before in this process: each timed load of
# time_first_loads gets classes with attribute values no earlier call used.
_fresh_classes_start = [1_000_000]


def time_first_loads(loops, dumps, obj, protocol):
    """``loops`` calls of ``pickle.loads``, each on a different payload of
    as many classes as ``obj`` holds, none of which this process has seen:
    the first load of a class in a worker, not a repeated one. The classes
    are pickled, then dropped (and collected) before the timed loads, so
    the class tracker knows none of them."""
    import gc
    import pickle

    payloads = []
    for _ in range(loops):
        start = _fresh_classes_start[0]
        _fresh_classes_start[0] += len(obj)
        payloads.append(dumps(_make_classes(len(obj), start), protocol))
    gc.collect()
    loads = pickle.loads
    loaded = []
    t0 = perf_counter()
    for payload in payloads:
        loaded.append(loads(payload))
    elapsed = perf_counter() - t0
    del loaded
    gc.collect()
    return elapsed


@workload(
    "first load of a payload of 200 dynamic classes in a process that has not seen "
    "them (target: >= 1.5x faster than the reference)",
    pickle_ok=False,
    same=_same_classes,
    timer=time_first_loads,
    groups=("by_value", "load"),
)
def classes_200_first_load():
    return _make_classes(200)


DEFAULT_WORKLOADS = tuple(WORKLOADS)


def select(spec):
    """Workload names for ``spec``: 'all', or a comma-separated list of
    workload names and group names."""
    if spec in (None, "", "all"):
        return list(DEFAULT_WORKLOADS)
    names = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part in WORKLOADS:
            matched = [part]
        else:
            matched = [n for n, w in WORKLOADS.items() if part in w.groups]
        if not matched:
            groups = sorted({g for w in WORKLOADS.values() for g in w.groups})
            known = ", ".join(list(WORKLOADS) + groups)
            raise ValueError(f"unknown workload or group {part!r} (known: {known})")
        names.extend(n for n in matched if n not in names)
    return names
