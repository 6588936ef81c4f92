"""The engine's reduction of classes and enums by value
(src/reduce/class_reduction.rs) against the rule written out in Python.

``ORACLE_*`` below states the rule: what ``_dynamic_class_reduce`` returns
for a class or an enum. The tests compare the engine's functions with it on
a broad set of classes (plain, with ``__slots__``, a ``__dict__`` property,
ABCs with virtual subclasses, enums, dataclasses, typing constructs, generic
subclasses, annotations, nested and self-referring classes, metaclasses):
the same reduce tuples, and the same payload bytes from ``dumps`` and from a
Pickler that reduces classes with the oracle. Then hostile classes: Python
code that runs mid-reduction and misbehaves gives a Python exception, never
a crash.
"""

import abc
import dataclasses
import enum
import io
import sys
import typing

import cloudpickle
import pytest
from _helpers import PROTOCOLS
from cloudpickle import cloudpickle as cp

PY314 = sys.version_info >= (3, 14)

# =============================================================================
# The rule, written out.
# =============================================================================

_MISSING = object()


def oracle_get_bases(typ):
    if "__orig_bases__" in getattr(typ, "__dict__", {}):
        return typ.__orig_bases__
    return typ.__bases__


def oracle_extract_class_dict(cls):
    own = cls.__dict__
    # Keys sorted, as new (non-interned) strings.
    copied = {"".join(key): own[key] for key in sorted(own)}
    bases = cls.__bases__
    if len(bases) == 1:
        inherited = bases[0].__dict__
    else:
        inherited = {}
        for base in reversed(bases):
            inherited.update(base.__dict__)
    return {k: v for k, v in copied.items() if inherited.get(k, _MISSING) is not v}


def oracle_class_getnewargs(obj):
    type_kwargs = {}
    if "__module__" in obj.__dict__:
        type_kwargs["__module__"] = obj.__module__
    descriptor = obj.__dict__.get("__dict__", None)
    if isinstance(descriptor, property):
        type_kwargs["__dict__"] = descriptor
    tracker_id = cp._get_or_create_tracker_id(obj)
    return (type(obj), obj.__name__, oracle_get_bases(obj), type_kwargs, tracker_id, None)


def oracle_enum_getnewargs(obj):
    members = {m.name: m.value for m in obj}
    tracker_id = cp._get_or_create_tracker_id(obj)
    return (
        obj.__bases__,
        obj.__name__,
        obj.__qualname__,
        members,
        obj.__module__,
        tracker_id,
        None,
    )


def oracle_registered(cls, class_dict):
    for key in ("_abc_cache", "_abc_negative_cache", "_abc_negative_cache_version"):
        class_dict.pop(key, None)
    registry = class_dict.pop("_abc_registry", None)
    if registry is not None:
        live = [c for c in registry if c is not None]
    else:
        class_dict.pop("_abc_impl", None)
        live = [c for c in (ref() for ref in abc._get_dump(cls)[0]) if c is not None]
    return sorted(live, key=lambda c: (str(c.__module__), c.__qualname__))


def oracle_class_getstate(obj):
    class_dict = oracle_extract_class_dict(obj)
    class_dict.pop("__weakref__", None)
    doc = class_dict.get("__doc__")
    if "__dataclass_fields__" in class_dict and isinstance(doc, str) and "{" in doc:
        canonical = cp._canonical_dataclass_doc(obj, doc)
        if canonical is not None:
            class_dict["__doc__"] = canonical
    if issubclass(type(obj), abc.ABCMeta):
        registered = oracle_registered(obj, class_dict)
        class_dict["_abc_impl"] = registered
    if "__slots__" in class_dict:
        slots = obj.__slots__
        if isinstance(slots, str):
            class_dict.pop(slots)
        else:
            for slot in slots:
                class_dict.pop(slot, None)
    class_dict.pop("__dict__", None)
    if PY314:
        annotate = class_dict.pop("__annotate_func__", None)
        cached = class_dict.pop("__annotations_cache__", None)
        if "__annotations__" not in class_dict and (isinstance(cached, dict) or callable(annotate)):
            # The one Python implementation of the evaluation, which the
            # engine calls too.
            annotations = cp._portable_class_annotations(obj, annotate, cached)
            if annotations is not None:
                class_dict["__annotations__"] = annotations
                class_dict = {key: class_dict[key] for key in sorted(class_dict)}
    return class_dict, {}


def oracle_enum_getstate(obj):
    class_dict, slotstate = oracle_class_getstate(obj)
    for key in (
        "_generate_next_value_",
        "_member_names_",
        "_member_map_",
        "_member_type_",
        "_value2member_map_",
    ):
        class_dict.pop(key, None)
    for member in obj:
        class_dict.pop(member.name)
    return class_dict, slotstate


def oracle_dynamic_class_reduce(obj):
    if issubclass(obj, enum.Enum):
        return (
            cp._make_skeleton_enum,
            oracle_enum_getnewargs(obj),
            oracle_enum_getstate(obj),
            None,
            None,
            cp._class_setstate,
        )
    return (
        cp._make_skeleton_class,
        oracle_class_getnewargs(obj),
        oracle_class_getstate(obj),
        None,
        None,
        cp._class_setstate,
    )


class OraclePickler(cloudpickle.Pickler):
    """Reduces the classes that go by value with the oracle."""

    def reducer_override(self, obj):
        # A class by its real type (on 3.9 a generic alias claims to be one).
        if (
            issubclass(type(obj), type)
            and obj not in cp._BUILTIN_TYPE_NAMES
            and obj not in (type(None), type(Ellipsis), type(NotImplemented))
            and not cp._should_pickle_by_reference(obj)
        ):
            return oracle_dynamic_class_reduce(obj)
        return super().reducer_override(obj)


# =============================================================================
# The classes.
# =============================================================================

T = typing.TypeVar("T")


def make_classes():
    """Classes defined in a function: they go by value."""

    class Plain:
        kind = "plain"
        tags = {"a", "b", "c"}

        def __init__(self, x):
            self.x = x

        def method(self):
            return Plain, self.x

        @classmethod
        def build(cls):
            return cls

        @staticmethod
        def helper():
            return 1

        @property
        def prop(self):
            return self.x

    class SlotsStr:
        __slots__ = "only"

    class SlotsTuple:
        __slots__ = ("a", "b", "__dict__", "__weakref__")

    class SlotsList:
        __slots__ = ["x", "y"]

    class DictProperty:
        @property
        def __dict__(self):
            return {"fake": 1}

    class Base(abc.ABC):
        @abc.abstractmethod
        def f(self): ...

    class Virtual:
        pass

    class OtherVirtual:
        pass

    Base.register(Virtual)
    Base.register(OtherVirtual)
    Base.register(int)

    class Color(enum.Enum):
        RED = 1
        GREEN = 2

        def other(self):
            return Color.GREEN

        @property
        def shout(self):
            return self.name.upper()

    class Num(enum.IntEnum):
        ONE = 1
        TWO = 2

    class Perm(enum.Flag):
        R = 4
        W = 2
        X = 1
        RW = 6

    class Letter(str, enum.Enum):
        A = "a"
        B = "b"

    @dataclasses.dataclass
    class Point:
        x: int = 0
        tags: frozenset = frozenset({"b", "a", "c"})

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int
        b: str = "x"

    class NT(typing.NamedTuple):
        a: int
        b: str = "b"

    class TD(typing.TypedDict):
        a: int
        b: "str"

    class Generic(typing.Generic[T]):
        def get(self) -> T: ...

    class Concrete(Generic[int]):
        pass

    class Annotated:
        a: int
        b: "Undefined"  # noqa: F821 - a forward reference never defined
        c: list["Annotated"]
        d: typing.Optional["Annotated"] = None

    class Outer:
        class Inner:
            def me(self):
                return Outer.Inner

        def make(self):
            return Outer.Inner()

    class Meta(type):
        def __new__(mcs, name, bases, ns, **kw):
            return super().__new__(mcs, name, bases, ns)

        def hello(cls):
            return cls.__name__

    class WithMeta(metaclass=Meta, flag=True):
        x = 1

    class Multi(Plain, Virtual):
        y = 2

    class Node:
        def make(self):
            return Leaf()

    class Leaf(Node):
        kinds = {"leaf", "terminal", "end"}

    Made = type("Made", (Plain,), {"z": 3})

    classes = dict(locals())
    if sys.version_info >= (3, 10):

        @dataclasses.dataclass(slots=True)
        class DataSlots:
            a: int
            b: list = dataclasses.field(default_factory=list)

        classes["DataSlots"] = DataSlots
    classes["Inner"] = Outer.Inner
    return {name: value for name, value in classes.items() if isinstance(value, type)}


CLASSES = make_classes()


def _class_param(name):
    return pytest.param(CLASSES[name], id=name)


ALL = [_class_param(name) for name in CLASSES]


# =============================================================================
# The engine against the oracle.
# =============================================================================


def _same(a, b):
    """The same object; on PyPy, a tuple may be rebuilt at each access
    (``cls.__bases__`` is): then the same items."""
    if a is b:
        return True
    return (
        sys.implementation.name == "pypy"
        and type(a) is tuple
        and type(b) is tuple
        and len(a) == len(b)
        and all(x is y for x, y in zip(a, b))
    )


def _same_dict(a, b):
    assert list(a) == list(b)
    for key in a:
        if key in ("_abc_impl", "__annotations__") or (key == "__doc__" and type(a[key]) is str):
            # Built afresh by each call (a dataclass's canonical docstring).
            assert a[key] == b[key], key
        else:
            assert _same(a[key], b[key]), key


@pytest.mark.parametrize("cls", ALL)
def test_reduction_is_the_rule(cls):
    engine = cp._dynamic_class_reduce(cls)
    oracle = oracle_dynamic_class_reduce(cls)
    assert len(engine) == len(oracle) == 6
    for i in (0, 3, 4, 5):
        assert engine[i] is oracle[i]
    assert engine[1] == oracle[1]
    for e, o in zip(engine[1], oracle[1]):
        if not isinstance(o, dict):
            assert _same(e, o) or (isinstance(o, str) and e == o)
    _same_dict(engine[2][0], oracle[2][0])
    assert engine[2][1] == {} and type(engine[2]) is tuple


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("protocol", [p for p in PROTOCOLS if p >= 2])
def test_same_bytes_as_the_rule(cls, protocol):
    engine = cloudpickle.dumps(cls, protocol=protocol)
    buffer = io.BytesIO()
    OraclePickler(buffer, protocol=protocol).dump(cls)
    assert buffer.getvalue() == engine
    # The reduce tuples themselves, pickled: the same objects in the same
    # places (the memo shares what is shared).
    assert cloudpickle.dumps(cp._dynamic_class_reduce(cls), protocol=protocol) == cloudpickle.dumps(
        oracle_dynamic_class_reduce(cls), protocol=protocol
    )


@pytest.mark.parametrize("cls", ALL)
def test_helpers_are_the_rule(cls):
    assert _same(cp._get_bases(cls), oracle_get_bases(cls))
    _same_dict(cp._extract_class_dict(cls), oracle_extract_class_dict(cls))
    if issubclass(cls, enum.Enum):
        assert cp._enum_getnewargs(cls) == oracle_enum_getnewargs(cls)
        _same_dict(cp._enum_getstate(cls)[0], oracle_enum_getstate(cls)[0])
    else:
        assert cp._class_getnewargs(cls) == oracle_class_getnewargs(cls)
        _same_dict(cp._class_getstate(cls)[0], oracle_class_getstate(cls)[0])


def test_class_dict_keys_are_copies():
    cls = CLASSES["Plain"]
    own = {key: key for key in cls.__dict__}
    for key in cp._extract_class_dict(cls):
        if len(key) > 1:
            assert key is not own[key]


def test_abc_registry_in_sorted_order():
    registered = cp._class_getstate(CLASSES["Base"])[0]["_abc_impl"]
    assert registered == sorted(registered, key=lambda c: (str(c.__module__), c.__qualname__))
    assert int in registered and CLASSES["Virtual"] in registered


def test_py_abc_registry():
    import _py_abc

    class PyBase(metaclass=_py_abc.ABCMeta):
        pass

    class Registered:
        pass

    PyBase.register(Registered)
    isinstance(1, PyBase)
    # With the C `_abc`, not an abc.ABCMeta: its namespace travels as it is.
    assert cp._class_getstate(PyBase)[0].keys() == oracle_class_getstate(PyBase)[0].keys()

    if abc.ABCMeta is _py_abc.ABCMeta:
        return  # No C `_abc` (PyPy): PyBase above was the WeakSet registry case.

    class PyABCMeta(_py_abc.ABCMeta, abc.ABCMeta):
        pass

    class Both(metaclass=PyABCMeta):
        pass

    Both.register(Registered)
    state = cp._class_getstate(Both)[0]
    assert state["_abc_impl"] == [Registered]
    assert "_abc_registry" not in state and "_abc_cache" not in state


# =============================================================================
# Hostile classes: Python code running mid-reduction.
# =============================================================================


class Boom(Exception):
    pass


def test_enum_metaclass_iter_raises():
    class BadIter(enum.EnumMeta):
        def __iter__(cls):
            raise Boom

    class Bad(enum.Enum, metaclass=BadIter):
        A = 1

    with pytest.raises(Boom):
        cp._dynamic_class_reduce(Bad)
    with pytest.raises(Boom):
        cloudpickle.dumps(Bad)


def test_enum_metaclass_iter_yields_strangers():
    class Strange(enum.EnumMeta):
        def __iter__(cls):
            yield 1

    class Odd(enum.Enum, metaclass=Strange):
        A = 1

    with pytest.raises(AttributeError):
        cp._enum_getnewargs(Odd)


def test_enum_member_names_missing_from_namespace():
    class Renaming(enum.EnumMeta):
        def __iter__(cls):
            class Fake:
                name = "NOT_THERE"
                value = 0

            yield Fake()

    class E(enum.Enum, metaclass=Renaming):
        A = 1

    with pytest.raises(KeyError):
        cp._enum_getstate(E)


@pytest.mark.parametrize(
    "bases", [None, 5, (), "abc", [object, object], Boom], ids=lambda b: repr(b)[:20]
)
def test_metaclass_bases_misbehaves(bases):
    class LyingMeta(type):
        @property
        def __bases__(cls):
            if bases is Boom:
                raise Boom
            return bases

    class Liar(metaclass=LyingMeta):
        x = 1

    try:
        engine = cp._extract_class_dict(Liar)
    except Exception as exc:  # noqa: BLE001 - compared with the oracle's
        with pytest.raises(type(exc)):
            oracle_extract_class_dict(Liar)
    else:
        _same_dict(engine, oracle_extract_class_dict(Liar))


def test_metaclass_dict_misbehaves():
    class LyingMeta(type):
        @property
        def __dict__(cls):
            raise Boom

    class Liar(metaclass=LyingMeta):
        pass

    with pytest.raises(Boom):
        cp._extract_class_dict(Liar)
    with pytest.raises(Boom):
        cp._class_getnewargs(Liar)
    # `getattr(typ, "__dict__", {})` lets only AttributeError through.
    with pytest.raises(Boom):
        cp._get_bases(Liar)


def test_metaclass_dict_not_a_mapping():
    class LyingMeta(type):
        @property
        def __dict__(cls):
            return 42

    class Liar(metaclass=LyingMeta):
        pass

    with pytest.raises(TypeError):
        cp._extract_class_dict(Liar)


def test_base_dict_mutated_while_read():
    # Reading a base's namespace runs a metaclass descriptor that changes
    # the class being reduced.
    class Mutating(type):
        @property
        def __dict__(cls):
            Target.added = 1
            return {"x": 1}

    class Base(metaclass=Mutating):
        pass

    class Target(Base):
        x = 1

    engine = cp._extract_class_dict(Target)
    # `x` is the same object as the base's (small ints are shared):
    # inherited, not shipped.
    assert "x" not in engine and "added" not in engine
    assert Target.added == 1
    _same_dict(engine, oracle_extract_class_dict(Target))


def test_registry_weakref_dies_mid_reduction():
    import gc

    class Base(abc.ABC):  # noqa: B024 - registers, has no abstract method
        pass

    class Short:
        pass

    Base.register(Short)

    class Lives:
        pass

    Base.register(Lives)
    del Short
    gc.collect()
    assert cp._class_getstate(Base)[0]["_abc_impl"] == [Lives]


def test_registered_class_qualname_not_comparable():
    class Base(abc.ABC):  # noqa: B024 - registers, has no abstract method
        pass

    class OddName(type):
        def __getattribute__(cls, name):
            if name == "__qualname__":
                return object()
            return super().__getattribute__(name)

    class A(metaclass=OddName):
        pass

    class B(metaclass=OddName):
        pass

    Base.register(A)
    Base.register(B)
    with pytest.raises(TypeError):
        cp._class_getstate(Base)


def test_str_slots_missing_from_namespace():
    class Slotted:
        __slots__ = "x"

    class Lying(type):
        def __getattribute__(cls, name):
            if name == "__slots__":
                return "nothing_named_so"
            return super().__getattribute__(name)

    Lied = Lying("Lied", (), {"__slots__": "y"})
    with pytest.raises(KeyError):
        cp._class_getstate(Lied)
    assert "x" not in cp._class_getstate(Slotted)[0]


def test_slots_not_iterable():
    class Lying(type):
        def __getattribute__(cls, name):
            if name == "__slots__":
                return 5
            return super().__getattribute__(name)

    Lied = Lying("Lied", (), {"__slots__": ()})
    with pytest.raises(TypeError):
        cp._class_getstate(Lied)


def test_not_a_class():
    for bad in (5, "text", None, len):
        with pytest.raises((TypeError, AttributeError)):
            cp._dynamic_class_reduce(bad)
        with pytest.raises((TypeError, AttributeError)):
            cp._class_reduce(bad)
    with pytest.raises(AttributeError):
        cp._extract_class_dict(5)


def test_unsortable_namespace_keys():
    cls = type("Keys", (), {})
    # type.__dict__ keys are strings; a metaclass can present others.

    class Mixed(type):
        @property
        def __dict__(cls):
            return {"a": 1, 2: 3}

    Odd = Mixed("Odd", (), {})
    with pytest.raises(TypeError):
        cp._extract_class_dict(Odd)
    assert cp._extract_class_dict(cls)["__module__"] == __name__


# =============================================================================
# Python 3.14+: annotate functions.
# =============================================================================

needs_314 = pytest.mark.skipif(not PY314, reason="lazy annotations are Python 3.14+")


@needs_314
def test_annotate_function_raises():
    class Local:
        x: int

    def annotate(format):
        raise Boom

    Local.__annotate__ = annotate
    state = cp._class_getstate(Local)[0]
    assert "__annotations__" not in state and "__annotate_func__" not in state
    assert cloudpickle.loads(cloudpickle.dumps(Local)).__name__ == "Local"


@needs_314
def test_annotate_function_mutates_the_class():
    class Local:
        x: int

    def annotate(format):
        Local.added = format
        Local.__doc__ = "changed"
        return {"y": str}

    Local.__annotate__ = annotate
    state = cp._class_getstate(Local)[0]
    assert list(state) == sorted(state)
    assert state["__annotations__"] == {"y": str}


@needs_314
def test_annotate_function_returns_no_dict():
    class Local:
        x: int

    Local.__annotate__ = lambda format: [("x", int)]
    state = cp._class_getstate(Local)[0]
    assert "__annotations__" not in state


@needs_314
def test_annotate_function_not_callable():
    class Local:
        x: int

    class Meta(type):
        pass

    odd = Meta("Odd", (), {"__annotate_func__": 5})
    assert "__annotate_func__" not in cp._class_getstate(odd)[0]
    assert "__annotations__" in cp._class_getstate(Local)[0]
