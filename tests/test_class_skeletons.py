"""The engine's ``_make_skeleton_class`` and ``_class_setstate`` (the only
implementation, src/reconstruct_class.rs) beyond the plain cases: classes
created as ``types.new_class`` creates them (``__mro_entries__``, derived
metaclasses, ``__prepare__``), namespaces and states given as other
mappings and iterables, and the errors the reference raises."""

import collections
import collections.abc
import sys
import types
import typing
import uuid

import cloudpickle
import pytest
from cloudpickle import cloudpickle as cp

make = cp._make_skeleton_class
setstate = cp._class_setstate


def fresh_id():
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------
# _make_skeleton_class
# ---------------------------------------------------------------------------


def test_generic_base_is_resolved_and_kept_as_orig_bases():
    T = typing.TypeVar("T")
    cls = make(type, "Box", (typing.Generic[T],), {"__module__": "m"}, None, None)
    assert cls.__bases__ == (typing.Generic,)
    assert cls.__orig_bases__ == (typing.Generic[T],)
    assert cls.__parameters__ == (T,)
    assert cls.__module__ == "m" and cls.__name__ == "Box"
    assert cls[int].__origin__ is cls


def test_named_tuple_through_mro_entries():
    cls = make(
        type,
        "Point",
        (typing.NamedTuple,),
        {"__module__": "m", "__annotations__": {"x": int, "y": int}},
        None,
        None,
    )
    assert cls._fields == ("x", "y")
    assert cls.__bases__ == (tuple,)
    assert cls.__orig_bases__ == (typing.NamedTuple,)
    assert cls(1, 2) == (1, 2) and cls(1, 2).y == 2


def test_typed_dict_with_its_metaclass():
    class Movie(typing.TypedDict):
        title: str

    meta = type(Movie)
    cls = make(
        meta,
        "Film",
        (typing.TypedDict,),
        {"__module__": "m", "__annotations__": {"title": str, "year": int}},
        None,
        None,
    )
    assert type(cls) is meta
    assert cls.__required_keys__ == frozenset({"title", "year"})
    assert cls.__orig_bases__ == (typing.TypedDict,)
    assert cls(title="t", year=1) == {"title": "t", "year": 1}


def test_custom_mro_entries():
    class Real:
        pass

    class Stand:
        def __mro_entries__(self, bases):
            return (Real,)

    stand = Stand()
    cls = make(type, "C", (stand, int), {"__module__": "m"}, None, None)
    assert cls.__bases__ == (Real, int)
    assert cls.__orig_bases__ == (stand, int)


def test_plain_bases_get_no_orig_bases():
    class Meta(type):
        pass

    cls = make(Meta, "C", (object,), {"__module__": "m"}, None, None)
    assert type(cls) is Meta
    assert "__orig_bases__" not in cls.__dict__


def test_custom_metaclass_prepare_and_keywords():
    calls = []

    class Namespace(dict):
        def update(self, other):
            calls.append(("update", sorted(other)))
            super().update(other)

    class Meta(type):
        @classmethod
        def __prepare__(mcs, name, bases, **kwargs):
            calls.append(("prepare", name, bases, kwargs))
            return Namespace(prepared=True)

        def __new__(mcs, name, bases, ns, **kwargs):
            calls.append(("new", type(ns).__name__, kwargs))
            return super().__new__(mcs, name, bases, dict(ns))

    class Base(metaclass=Meta):
        def __init_subclass__(cls, **kwargs):
            calls.append(("init_subclass", cls.__name__, kwargs))

    del calls[:]
    # type as the given constructor: the bases' more derived metaclass wins.
    cls = make(type, "Child", (Base,), {"__module__": "m", "attr": 1}, None, None)
    assert type(cls) is Meta
    assert cls.prepared is True and cls.attr == 1 and cls.__module__ == "m"
    assert calls == [
        ("prepare", "Child", (Base,), {}),
        ("update", ["__module__", "attr"]),
        ("new", "Namespace", {}),
        ("init_subclass", "Child", {}),
    ]


def test_incompatible_metaclasses_raise_as_new_class_does():
    class A(type):
        pass

    class B(type):
        pass

    with pytest.raises(TypeError, match="metaclass conflict"):
        make(A, "C", (B("Other", (), {}),), {"__module__": "m"}, None, None)


def test_missing_module_is_taken_from_new_class():
    # type.__new__ takes a missing __module__ from the calling frame's
    # globals: that of types.new_class, as in the reference.
    cls = make(type, "NoModule", (object,), {}, None, None)
    assert cls.__module__ == "types"


def test_namespace_as_another_mapping():
    for kwargs in (
        types.MappingProxyType({"__module__": "m", "x": 1}),
        collections.OrderedDict([("__module__", "m"), ("x", 1)]),
    ):
        cls = make(type, "C", (object,), kwargs, None, None)
        assert cls.__module__ == "m" and cls.x == 1


def test_namespace_keys_are_interned():
    key = "".join(["dyn", "amic_attribute_name"])
    cls = make(type, "C", (object,), {"__module__": "m", key: 1}, None, None)
    stored = next(k for k in cls.__dict__ if k == key)
    assert stored is sys.intern(key)


def test_namespace_keys_must_be_exact_strings():
    class S(str):
        pass

    with pytest.raises(TypeError, match=r"^intern\(\) argument must be str, not int$"):
        make(type, "C", (object,), {1: "x", "__module__": "m"}, None, None)
    with pytest.raises(TypeError, match=r"^intern\(\) argument must be str, not None$"):
        make(type, "C", (object,), {None: "x", "__module__": "m"}, None, None)
    with pytest.raises(TypeError, match="^can't intern S$"):
        make(type, "C", (object,), {S("k"): "x", "__module__": "m"}, None, None)
    # The same checks on the general branch.
    with pytest.raises(TypeError, match=r"^intern\(\) argument must be str, not int$"):
        make(type, "C", (typing.Generic[typing.T],), {1: "x"}, None, None)


def test_general_branch_is_tracked():
    tracker = fresh_id()
    T = typing.TypeVar("T")
    first = make(type, "Box", (typing.Generic[T],), {"__module__": "m"}, tracker, None)
    again = make(type, "Box", (typing.Generic[T],), {"__module__": "m"}, tracker, None)
    assert again is first
    assert cp._get_or_create_tracker_id(first) == tracker


def test_round_trips_keep_their_classes():
    T = typing.TypeVar("T")

    class Box(typing.Generic[T]):
        def get(self):
            return 1

    class Point(typing.NamedTuple):
        x: int
        y: int = 0

    class Movie(typing.TypedDict, total=False):
        title: str

    for cls in (Box, Point, Movie):
        payload = cloudpickle.dumps(cls)
        # In this process the tracker gives the class back.
        assert cloudpickle.loads(payload) is cls
    assert Box[int]().get() == 1


# ---------------------------------------------------------------------------
# _class_setstate
# ---------------------------------------------------------------------------


class Recording(collections.abc.Mapping):
    """A mapping that is not a dict, recording how it is read."""

    def __init__(self, data):
        self.data = dict(data)
        self.calls = []

    def __getitem__(self, key):
        self.calls.append(("getitem", key))
        return self.data[key]

    def __contains__(self, key):
        self.calls.append(("contains", key))
        return key in self.data

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)

    def items(self):
        self.calls.append(("items",))
        return list(self.data.items())


def test_state_as_a_list_with_a_mapping_proxy():
    cls = type("C", (), {})
    assert setstate(cls, [types.MappingProxyType({"a": 1, "b": 2}), None]) is cls
    assert cls.a == 1 and cls.b == 2


def test_state_with_a_mapping_other_than_dict():
    cls = type("C", (), {})
    state = Recording({"a": 1, "__doc__": "doc"})
    setstate(cls, (state, {}))
    assert cls.a == 1 and cls.__doc__ == "doc"
    expected = [("contains", "__annotations__"), ("items",)]
    if sys.version_info >= (3, 13):
        expected.append(("contains", "__firstlineno__"))
    assert state.calls == expected


def test_state_with_annotations_and_firstlineno_in_a_mapping():
    cls = type("C", (), {})
    state = Recording({"__firstlineno__": 7, "__annotations__": {"a": int}, "a": 1})
    setstate(cls, (state, None))
    assert cls.a == 1
    assert cls.__annotations__ == {"a": int}
    assert state.calls[:2] == [("contains", "__annotations__"), ("getitem", "__annotations__")]
    if sys.version_info >= (3, 13):
        # Set last: assigning any attribute of a class deletes it.
        assert cls.__firstlineno__ == 7
        assert state.calls[-2:] == [
            ("contains", "__firstlineno__"),
            ("getitem", "__firstlineno__"),
        ]


def test_items_must_be_pairs():
    class Pairs(Recording):
        def items(self):
            return [("a", 1), ("b",)]

    cls = type("C", (), {})
    with pytest.raises(ValueError, match=r"^not enough values to unpack \(expected 2, got 1\)$"):
        setstate(cls, (Pairs({}), None))
    assert cls.a == 1


def test_abc_registry_from_a_mapping():
    import abc

    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self): ...

    class Virtual:
        pass

    setstate(Base, (types.MappingProxyType({"_abc_impl": [Virtual], "x": 1}), None))
    assert issubclass(Virtual, Base) and Base.x == 1
    # A registry of None registers nothing, as `is not None` says.
    setstate(Base, ({"_abc_impl": None, "y": 2}, None))
    assert Base.y == 2


def test_wrong_state_shapes():
    cls = type("C", (), {})
    with pytest.raises(ValueError, match=r"^too many values to unpack \(expected 2"):
        setstate(cls, [{}, None, None])
    with pytest.raises(ValueError, match=r"^not enough values to unpack \(expected 2, got 0\)$"):
        setstate(cls, ())
    with pytest.raises(TypeError, match="^cannot unpack non-iterable NoneType object$"):
        setstate(cls, None)
    with pytest.raises(AttributeError):
        setstate(cls, (["not", "a mapping"], None))


def test_metaclass_setattr_mutating_a_mapping_state():
    class D(dict):
        pass

    state = D(a=1, b=2)

    class Meta(type):
        def __setattr__(cls, name, value):
            state.clear()
            super().__setattr__(name, value)

    cls = Meta("C", (), {})
    # A dict subclass is read through its items(), as Python reads it: the
    # change during the walk raises as iterating the dict does.
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        setstate(cls, (state, None))
    assert cls.a == 1
