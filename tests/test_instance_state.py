"""Instances whose state is written without calling ``__reduce_ex__``.

The engine writes what ``object.__reduce_ex__(2+)`` and ``save_reduce``
would give for instances of classes with ``__slots__`` (with or without a
``__dict__``) and of classes with a Python ``__getstate__``
(``src/pickler/instance.rs``). The standard ``pickle`` is the oracle for
importable classes, at every protocol (below 2, ``copyreg`` refuses slotted
classes without ``__getstate__``: the same exception is expected); for
classes pickled by value the general path (fast paths off) is.
"""

import copyreg
import dataclasses
import pickle
import sys
import weakref

import cloudpickle
import pytest
from cloudpickle import _engine

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Slots3:
    __slots__ = ("x", "y", "label")

    def __init__(self, x=1, y=2.5, label="a"):
        self.x = x
        self.y = y
        self.label = label


class SlotsAndDict:
    __slots__ = ("x", "__dict__")

    def __init__(self, x=1, **attrs):
        self.x = x
        self.__dict__.update(attrs)


class Base:
    __slots__ = ("a", "__weakref__")


class Derived(Base):
    __slots__ = ("b", "__private")

    def __init__(self, a, b, private):
        self.a = a
        self.b = b
        self.__private = private


class SingleStr:
    __slots__ = "only"


class Empty:
    __slots__ = ()


class DictSub(Base):
    """Slots from the base, a __dict__ from the subclass."""


class Shadowed(Slots3):
    """A property where the base has a slot: getattr finds the property."""

    __slots__ = ()

    def __init__(self):
        Slots3.x.__set__(self, "in the slot")
        self.y = 2

    @property
    def x(self):
        return "from the property"


class ManySlots:
    __slots__ = tuple(f"s{i}" for i in range(20))

    def __init__(self):
        for i in range(0, 20, 3):
            setattr(self, f"s{i}", i)


class TupleState:
    def __init__(self, x):
        self.x = x
        self.cache = object()

    def __getstate__(self):
        return (self.x, [self.x])

    def __setstate__(self, state):
        self.x = state[0]


class NoneState:
    def __init__(self):
        self.x = 1

    def __getstate__(self):
        return None


class DictState:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __getstate__(self):
        return {"x": self.x, "y": self.y}

    def __setstate__(self, state):
        self.x = state["x"]
        self.y = state["y"]


class RaisingState:
    def __getstate__(self):
        raise ValueError("no state")


# ``slots=`` is new in 3.10: on 3.9 the two dataclass cases are left out.
_DATACLASS_SLOTS = sys.version_info >= (3, 10)

if _DATACLASS_SLOTS:

    @dataclasses.dataclass(slots=True)
    class SlotRecord:
        ident: int
        name: str

    @dataclasses.dataclass(slots=True, frozen=True)
    class FrozenSlotRecord:
        ident: int
        name: str


class Hook:
    """Its reduction deletes a slot of its owner, which pickle has read
    already, and sets another."""

    def __init__(self, owner):
        self.owner = owner

    def __reduce__(self):
        try:
            del self.owner.y
        except AttributeError:
            pass
        self.owner.label = "changed"
        return (str, ("hook",))


def _hooked():
    owner = Slots3()
    owner.x = Hook(owner)
    return owner


def _shared():
    shared = [1, 2, 3]
    return [Slots3(shared, shared, "same"), Slots3(shared, None, "same")]


def _recursive():
    obj = Slots3()
    obj.x = obj
    obj.y = [obj]
    return obj


def _missing():
    obj = Slots3.__new__(Slots3)
    obj.y = "only y"
    return [obj, Slots3.__new__(Slots3), Derived.__new__(Derived)]


def _dict_shadows_getstate():
    obj = SlotsAndDict(1)
    obj.__getstate__ = lambda: ("from", "the", "dict")
    return obj


def _cases():
    cases = {
        "slots": [Slots3(i, i / 2, f"s{i}") for i in range(5)],
        "slots and dict": [SlotsAndDict(1), SlotsAndDict(2, a=1, b=[2])],
        "inherited and private": Derived(1, [2], {"p": 3}),
        "single str": SingleStr(),
        "single str set": (lambda o: (setattr(o, "only", 7), o)[1])(SingleStr()),
        "empty slots": [Empty(), Empty()],
        "dict subclass of slotted": (lambda o: (setattr(o, "z", 5), o)[1])(DictSub()),
        "shadowed slot": Shadowed(),
        "many slots": ManySlots(),
        "missing values": _missing(),
        "shared values": _shared(),
        "recursive": _recursive(),
        "hook changes the owner": _hooked(),
        "dict shadows getstate": _dict_shadows_getstate(),
        "tuple state": [TupleState(1), TupleState(2)],
        "none state": NoneState(),
        "dict state with slots": DictState(1, "y"),
    }
    if _DATACLASS_SLOTS:
        cases["dataclass slots"] = [SlotRecord(1, "a"), SlotRecord(2, "b")]
        cases["frozen dataclass slots"] = FrozenSlotRecord(1, "a")
    return cases


def _outcome(dumps, obj, protocol):
    try:
        return dumps(obj, protocol)
    except Exception as exc:  # the same exception type as pickle is expected
        return type(exc)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(_cases()))
def test_same_bytes_as_pickle(name, protocol):
    expected = _outcome(pickle.dumps, _cases()[name], protocol)
    assert _outcome(cloudpickle.dumps, _cases()[name], protocol) == expected
    prev = _engine._set_fast_paths(False)
    try:
        assert _outcome(cloudpickle.dumps, _cases()[name], protocol) == expected
    finally:
        _engine._set_fast_paths(prev)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_getstate_errors_propagate(protocol):
    with pytest.raises(ValueError, match="no state"):
        pickle.dumps(RaisingState(), protocol)
    with pytest.raises(ValueError, match="no state"):
        cloudpickle.dumps(RaisingState(), protocol)


def test_round_trip():
    obj = Derived(1, [2], {"p": 3})
    loaded = pickle.loads(cloudpickle.dumps(obj))
    assert (loaded.a, loaded.b, loaded._Derived__private) == (1, [2], {"p": 3})
    assert weakref.ref(loaded)() is loaded
    loaded = pickle.loads(cloudpickle.dumps(_recursive()))
    assert loaded.x is loaded and loaded.y[0] is loaded
    # The slots are read before anything is saved, as object.__getstate__
    # reads them: what the hook changes later is not seen.
    loaded = pickle.loads(cloudpickle.dumps(_hooked()))
    assert (loaded.x, loaded.y, loaded.label) == ("hook", 2.5, "a")


def test_slotnames_list_changed_in_place():
    class Mutable:
        __slots__ = ("a", "b")

    try:
        Mutable.__module__ = __name__
        Mutable.__qualname__ = "Mutable"
        globals()["Mutable"] = Mutable
        obj = Mutable()
        obj.a, obj.b = 1, 2
        first = cloudpickle.dumps(obj)
        assert first == pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        # Neither assignment nor a new class: the type's version tag stays.
        Mutable.__slotnames__.reverse()
        second = cloudpickle.dumps(obj)
        assert second == pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        assert second != first
        Mutable.__slotnames__[0] = "".join(["b"])  # equal, not the same object
        assert cloudpickle.dumps(obj) == second
        Mutable.__slotnames__.remove("a")
        top = pickle.HIGHEST_PROTOCOL
        assert _outcome(cloudpickle.dumps, obj, top) == _outcome(pickle.dumps, obj, top)
    finally:
        globals().pop("Mutable", None)


def test_class_changed_between_dumps():
    class Changing:
        __slots__ = ("a",)

    try:
        Changing.__module__ = __name__
        Changing.__qualname__ = "Changing"
        globals()["Changing"] = Changing
        obj = Changing()
        obj.a = 1
        assert cloudpickle.dumps(obj) == pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        Changing.__getstate__ = lambda self: ("custom", self.a)
        Changing.__setstate__ = lambda self, state: None
        assert cloudpickle.dumps(obj) == pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        Changing.__reduce__ = lambda self: (int, (5,))
        assert cloudpickle.dumps(obj) == pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    finally:
        globals().pop("Changing", None)


def _dynamic():
    class DynSlots:
        __slots__ = ("x", "y")

        def __init__(self, x):
            self.x = x
            self.y = [x]

    class DynBoth:
        __slots__ = ("x", "__dict__")

        def __init__(self, x):
            self.x = x
            self.z = x

    class DynState:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "extra": 1}

    return [c(i) for i in range(3) for c in (DynSlots, DynBoth, DynState)]


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_by_value_classes_fast_paths_off(protocol):
    objs = _dynamic()
    cloudpickle.dumps(objs, protocol)  # __slotnames__ cached in the classes
    fast = cloudpickle.dumps(objs, protocol)
    prev = _engine._set_fast_paths(False)
    try:
        slow = cloudpickle.dumps(objs, protocol)
    finally:
        _engine._set_fast_paths(prev)
    assert fast == slow
    loaded = pickle.loads(fast)
    assert [(o.x, getattr(o, "y", None)) for o in loaded[:2]] == [(0, [0]), (0, None)]
    assert loaded[1].z == 0 and loaded[2].extra == 1


def test_pickler_with_memo_and_persistent_id():
    # A Pickler's memo is visible: the state's temporaries are built and
    # memoized there as pickle does; persistent_id sees them too.
    seen = []

    class Recording(cloudpickle.Pickler):
        def persistent_id(self, obj):
            seen.append(type(obj).__name__)
            return None

    class RecordingPickle(pickle.Pickler):
        def persistent_id(self, obj):
            seen.append(type(obj).__name__)
            return None

    import io

    objs = [Slots3(), SlotsAndDict(3, q=1)]
    outputs = []
    for cls in (Recording, RecordingPickle):
        seen.clear()
        buf = io.BytesIO()
        p = cls(buf, protocol=pickle.HIGHEST_PROTOCOL)
        p.dump(objs)
        p.dump(objs)
        outputs.append((buf.getvalue(), list(seen)))
    assert outputs[0] == outputs[1]
    assert "tuple" in outputs[0][1] and "dict" in outputs[0][1]


def test_reducer_override_sees_instances():
    class Overriding(cloudpickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, Slots3):
                return (str, ("overridden",))
            return super().reducer_override(obj)

    import io

    buf = io.BytesIO()
    Overriding(buf).dump([Slots3(), TupleState(1)])
    loaded = pickle.loads(buf.getvalue())
    assert loaded[0] == "overridden" and loaded[1].x == 1


def test_copyreg_dispatch_wins():
    copyreg.pickle(Slots3, lambda obj: (str, ("by copyreg",)))
    try:
        assert pickle.loads(cloudpickle.dumps(Slots3())) == "by copyreg"
    finally:
        copyreg.dispatch_table.pop(Slots3, None)
