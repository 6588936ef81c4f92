"""Objects pickled through the reduce protocol, by importable classes.

Every object here must pickle byte-identically to ``pickle.dumps`` at every
protocol where pickle itself succeeds (and fail with the same exception type
where pickle fails), and ``pickle.loads`` must give back an equal object.
The classes live at module level so that pickle finds them by reference.
"""

import array
import collections
import copyreg
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import ipaddress
import operator
import pathlib
import pickle
import re
import sys
import types
import typing
import uuid

import _importable
import cloudpickle
import pytest
from _helpers import assert_dumps_like_pickle

# ---------------------------------------------------------------------------
# Classes exercising every shape of the reduce protocol
# ---------------------------------------------------------------------------


class EqByDict:
    """Base giving value equality over type and instance ``__dict__``."""

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)

    def __repr__(self):
        return f"{type(self).__name__}({vars(self)!r})"


class Plain(EqByDict):
    pass


def make_plain(**attrs):
    obj = Plain()
    obj.__dict__.update(attrs)
    return obj


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b=None, set_b=True):
        self.a = a
        if set_b:
            self.b = b

    def __eq__(self, other):
        return type(other) is type(self) and all(
            getattr(self, n, "<unset>") == getattr(other, n, "<unset>") for n in self.__slots__
        )


class SlottedWithDict:
    __slots__ = ("a", "__dict__")

    def __init__(self, a, **extra):
        self.a = a
        self.__dict__.update(extra)

    def __eq__(self, other):
        return type(other) is type(self) and (self.a, self.__dict__) == (other.a, other.__dict__)


class SlottedChild(Slotted):
    __slots__ = ("c",)

    def __init__(self, a, b, c):
        super().__init__(a, b)
        self.c = c

    def __eq__(self, other):
        return super().__eq__(other) and self.c == other.c


class WithState:
    """``__getstate__``/``__setstate__`` with a non-dict state."""

    def __init__(self, x, y):
        self.x = x
        self.y = y
        self.cache = object()  # not picklable-by-value meaningfully; dropped by getstate

    def __getstate__(self):
        return (self.x, self.y)

    def __setstate__(self, state):
        self.x, self.y = state
        self.cache = None

    def __eq__(self, other):
        return type(other) is WithState and (self.x, self.y) == (other.x, other.y)


class FalsyState:
    """``__getstate__`` returning a falsy value."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state

    def __setstate__(self, state):
        self._state = state

    def __eq__(self, other):
        return type(other) is FalsyState


class ReduceToString:
    """``__reduce__`` returning a string: pickled as the global of that name."""

    def __reduce__(self):
        return "THE_SINGLETON"


THE_SINGLETON = ReduceToString()


class Reduce2(EqByDict):
    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __reduce__(self):
        return (Reduce2, (self.a, self.b))


class Reduce3(EqByDict):
    def __init__(self, a):
        self.a = a

    def __reduce__(self):
        return (Reduce3, (None,), {"a": self.a})


class Reduce3SlotState:
    """State given as the (dict_state, slot_state) pair BUILD understands."""

    __slots__ = ("s", "__dict__")

    def __init__(self, s=None, **kw):
        self.s = s
        self.__dict__.update(kw)

    def __reduce__(self):
        return (Reduce3SlotState, (), (dict(self.__dict__) or None, {"s": self.s}))

    def __eq__(self, other):
        return type(other) is type(self) and (self.s, self.__dict__) == (other.s, other.__dict__)


class ListLike(EqByDict):
    """``__reduce__`` with a listitems iterator (4th item)."""

    def __init__(self, items=()):
        self.items = list(items)

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __reduce__(self):
        return (ListLike, (), None, iter(self.items))


class DictLike(EqByDict):
    """``__reduce__`` with a dictitems iterator (5th item)."""

    def __init__(self, mapping=None):
        self.mapping = dict(mapping or {})

    def __setitem__(self, key, value):
        self.mapping[key] = value

    def __reduce__(self):
        return (DictLike, (), None, None, iter(self.mapping.items()))


class AllNones(EqByDict):
    """A 5-tuple whose optional items are all None."""

    def __reduce__(self):
        return (AllNones, (), None, None, None)


class WithStateSetter(EqByDict):
    """A 6-tuple: the state is applied by a module-level state_setter."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __reduce__(self):
        state = {k: v for k, v in vars(self).items() if k != "via_state_setter"}
        return (WithStateSetter, (), state, None, None, _importable.set_state)


class WithStateSetterAndItems(ListLike):
    """A 6-tuple using listitems, state and a state_setter at once."""

    def __reduce__(self):
        return (
            WithStateSetterAndItems,
            (),
            {"tag": "t"},
            iter(self.items),
            None,
            _importable.set_state,
        )


class ReduceExByProtocol(EqByDict):
    """``__reduce_ex__`` whose answer depends on the protocol."""

    def __init__(self, value, proto_seen=None):
        self.value = value
        self.proto_seen = proto_seen

    def __reduce_ex__(self, protocol):
        return (ReduceExByProtocol, (self.value, protocol))

    def __eq__(self, other):
        return type(other) is type(self) and other.value == self.value


class ReduceExBeatsReduce(EqByDict):
    """``__reduce_ex__`` takes precedence over ``__reduce__``."""

    def __reduce__(self):
        raise AssertionError("__reduce__ must not be called when __reduce_ex__ exists")

    def __reduce_ex__(self, protocol):
        return (ReduceExBeatsReduce, ())


class NeedsNewArgs:
    """``__new__`` requires arguments, supplied by ``__getnewargs__``."""

    def __new__(cls, a, b):
        self = super().__new__(cls)
        self.a, self.b = a, b
        return self

    def __getnewargs__(self):
        return (self.a, self.b)

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)


class NeedsNewArgsEx:
    """``__new__`` with a keyword-only argument, via ``__getnewargs_ex__``:
    NEWOBJ_EX from protocol 4, a ``functools.partial`` fallback below."""

    def __new__(cls, a, *, b):
        self = super().__new__(cls)
        self.a, self.b = a, b
        return self

    def __getnewargs_ex__(self):
        return ((self.a,), {"b": self.b})

    def __eq__(self, other):
        return type(other) is type(self) and vars(other) == vars(self)


class NewArgsExNoKwargs(NeedsNewArgsEx):
    """``__getnewargs_ex__`` with an empty kwargs dict: plain NEWOBJ."""

    def __new__(cls, a, b=None):
        self = object.__new__(cls)
        self.a, self.b = a, b
        return self

    def __getnewargs_ex__(self):
        return ((self.a, self.b), {})


class ExplicitNewObj(EqByDict):
    """``__reduce__`` naming ``copyreg.__newobj__`` explicitly."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (copyreg.__newobj__, (type(self),), {"value": self.value})


class ExplicitNewObjEx(EqByDict):
    """``__reduce__`` naming ``copyreg.__newobj_ex__`` explicitly."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (copyreg.__newobj_ex__, (type(self), (), {}), {"value": self.value})


class RListSubclass(list):
    """A list subclass with attributes."""

    def __eq__(self, other):
        return type(other) is type(self) and list(self) == list(other) and vars(self) == vars(other)


class RDictSubclass(dict):
    """A dict subclass with attributes."""

    def __eq__(self, other):
        return type(other) is type(self) and dict(self) == dict(other) and vars(self) == vars(other)


class RSetSubclass(set):
    pass


class RTupleSubclass(tuple):
    pass


class RStrSubclass(str):
    pass


class RIntSubclass(int):
    pass


class RFloatSubclass(float):
    pass


class RBytesSubclass(bytes):
    pass


@dataclasses.dataclass
class DataRecord:
    name: str
    values: list = dataclasses.field(default_factory=list)
    parent: "typing.Optional[DataRecord]" = None


@dataclasses.dataclass(frozen=True)
class FrozenData:
    x: int
    y: tuple = ()


class Coordinates(typing.NamedTuple):
    lat: float
    lon: float


PointTuple = collections.namedtuple("PointTuple", ["x", "y"])


class Fruit(enum.Enum):
    APPLE = "apple"
    PEAR = "pear"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class RegisteredViaCopyreg(EqByDict):
    """Pickled through a ``copyreg.pickle`` registration (see test below)."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        raise AssertionError("copyreg registration must win over __reduce__")


def _reduce_registered(obj):
    return (RegisteredViaCopyreg, (obj.v,))


def _build_cases():
    shared = [1, 2]
    rlist = RListSubclass([1, 2, shared])
    rlist.attr = "list attribute"
    rdict = RDictSubclass(a=1, b=[shared])
    rdict.attr = "dict attribute"
    rint = RIntSubclass(42)
    rint.note = "int with attrs"
    parent = DataRecord("parent")
    child = DataRecord("child", [1, 2], parent)
    self_ref = make_plain(name="self")
    self_ref.me = self_ref
    ll = ListLike(range(5))
    ll_big = ListLike(range(2500))
    dl = DictLike({i: str(i) for i in range(3)})
    dl_big = DictLike({i: i for i in range(2100)})
    sws = WithStateSetterAndItems([1, 2, 3])
    return {
        "plain-empty": Plain(),
        "plain-attrs": make_plain(a=1, b="two", c=[3.0], d={"e": None}),
        "plain-self-ref": self_ref,
        "plain-shared-attr": [make_plain(x=shared), make_plain(y=shared)],
        "slots": Slotted(1, [2]),
        "slots-partially-set": Slotted(1, set_b=False),
        "slots-and-dict": SlottedWithDict(1, extra="x"),
        "slots-inherited": SlottedChild(1, 2, 3),
        "getstate-setstate": WithState(1, [2]),
        "getstate-none": FalsyState(None),
        "getstate-zero": FalsyState(0),
        "getstate-empty-dict": FalsyState({}),
        "getstate-false": FalsyState(False),
        "reduce-string": THE_SINGLETON,
        "reduce-string-twice": [THE_SINGLETON, THE_SINGLETON],
        "reduce-2": Reduce2(1, (2, 3)),
        "reduce-3": Reduce3({"k": "v"}),
        "reduce-3-slot-state": Reduce3SlotState(s=5, d=6),
        "reduce-3-slot-state-only": Reduce3SlotState(s=5),
        "reduce-4-listitems": ll,
        "reduce-4-listitems-batched": ll_big,
        "reduce-4-listitems-empty": ListLike(),
        "reduce-5-dictitems": dl,
        "reduce-5-dictitems-batched": dl_big,
        "reduce-5-all-none": AllNones(),
        "reduce-6-state-setter": WithStateSetter(a=1, b=[2]),
        "reduce-6-state-setter-items": sws,
        "reduce-ex-by-protocol": ReduceExByProtocol("v"),
        "reduce-ex-beats-reduce": ReduceExBeatsReduce(),
        "getnewargs": NeedsNewArgs(1, "b"),
        "getnewargs-ex": NeedsNewArgsEx(1, b=[2]),
        "getnewargs-ex-empty-kwargs": NewArgsExNoKwargs(1, 2),
        "copyreg-newobj-explicit": ExplicitNewObj([1]),
        "copyreg-newobj-ex-explicit": ExplicitNewObjEx({"v": 1}),
        "same-instance-twice": [shared, Reduce2(shared, shared), Reduce2(shared, shared)],
        "dataclass": child,
        "dataclass-frozen": FrozenData(1, (2, 3)),
        "dataclass-importable": _importable.FrozenRecord("n", ("t",)),
        "namedtuple": PointTuple(1, 2),
        "typing-namedtuple": Coordinates(1.5, -2.5),
        "enum": Fruit.PEAR,
        "enum-list": [Fruit.APPLE, Fruit.APPLE, Fruit.PEAR],
        "int-enum": Level.HIGH,
        "flag": Perm.R | Perm.W,
        "enum-importable": _importable.Color.RED,
        "date": datetime.date(2024, 2, 29),
        "time": datetime.time(12, 30, 15, 999),
        "time-tz": datetime.time(1, 2, tzinfo=datetime.timezone.utc),
        "datetime": datetime.datetime(2001, 2, 3, 4, 5, 6, 7),
        "datetime-tz": datetime.datetime(
            2001, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5), "EST")
        ),
        "datetime-fold": datetime.datetime(2021, 11, 7, 1, 30, fold=1),
        "timedelta": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        "timezone-utc": datetime.timezone.utc,
        "decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
        "decimal-special": [
            decimal.Decimal("-0"),
            decimal.Decimal("Infinity"),
            decimal.Decimal("-1E+999"),
        ],
        "fraction": fractions.Fraction(22, 7),
        "ordered-dict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "defaultdict": collections.defaultdict(list, {"a": [1], "b": []}),
        "defaultdict-no-factory": collections.defaultdict(None, {1: 2}),
        "deque": collections.deque([1, 2, 3]),
        "deque-maxlen": collections.deque([1, 2, 3], maxlen=5),
        "counter": collections.Counter("mississippi"),
        "chainmap": collections.ChainMap({"a": 1}, {"b": 2}),
        "userdict": collections.UserDict({"a": 1}),
        "userlist": collections.UserList([1, 2]),
        "list-subclass": rlist,
        "dict-subclass": rdict,
        "set-subclass": RSetSubclass({1, 2}),
        "frozenset-of-tuples": frozenset({(1, 2), (3, 4)}),
        "tuple-subclass": RTupleSubclass((1, 2)),
        "str-subclass": RStrSubclass("text"),
        "int-subclass": rint,
        "float-subclass": RFloatSubclass(1.5),
        "bytes-subclass": RBytesSubclass(b"raw"),
        "range": range(0, 10, 2),
        "range-empty": range(0),
        "range-huge": range(-(10**20), 10**20, 7),
        "slice": slice(1, None, 2),
        "slice-objects": slice("a", [1], None),
        "bound-builtin-append": [].append,
        "bound-builtin-on-data": [1, 2, 3].append,
        "bound-builtin-dict-get": {"a": 1}.get,
        "method-descriptor": str.join,
        "partial": functools.partial(max, 1, key=abs),
        "itemgetter": operator.itemgetter(1, "a"),
        "attrgetter": operator.attrgetter("a.b", "c"),
        "methodcaller": operator.methodcaller("split", ",", maxsplit=1),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "pure-path": pathlib.PurePosixPath("/usr/lib/python3"),
        "ipv4": ipaddress.ip_address("192.0.2.1"),
        "ipv6-network": ipaddress.ip_network("2001:db8::/32"),
        "regex": re.compile(r"a+b*", re.IGNORECASE),
        "array-ints": array.array("i", [1, -2, 3]),
        "array-doubles": array.array("d", [1.5, -0.0]),
        "exception": ValueError("bad value", 42),
        "exception-with-attrs": _exception_with_attrs(),
        "key-error": KeyError("k"),
        "stop-iteration": StopIteration(5),
        "complex-in-tuple": (1 + 2j, complex(-0.0, 0)),
        "mixed-container": {
            "when": datetime.date(2020, 1, 1),
            "amount": decimal.Decimal("1.10"),
            "who": [Fruit.APPLE, PointTuple(1, [2])],
        },
    }


def _exception_with_attrs():
    exc = OSError(2, "No such file")
    exc.custom = "attribute"
    return exc


CASES = _build_cases()

# Objects whose equality is identity-based or otherwise not meaningful after a round trip.
_NO_EQUALITY = {
    "reduce-ex-beats-reduce",
    "method-descriptor",
    "bound-builtin-append",
    "bound-builtin-on-data",
    "bound-builtin-dict-get",
    "partial",
    "itemgetter",
    "attrgetter",
    "methodcaller",
    "exception",
    "exception-with-attrs",
    "key-error",
    "stop-iteration",
    "plain-self-ref",
    "getstate-none",
    "getstate-zero",
    "getstate-empty-dict",
    "getstate-false",
    "reduce-6-state-setter",
    "reduce-6-state-setter-items",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduce_protocol_identity(name, protocol):
    """Objects of importable classes pickle byte-identically to pickle and load back equal."""
    obj = CASES[name]
    if sys.implementation.name == "pypy" and type(obj) is types.MethodType:
        from test_identity_edge_cases import _check_pypy_builtin_method

        _check_pypy_builtin_method(obj, protocol)
        return
    data = assert_dumps_like_pickle(obj, protocol)
    if data is None:
        return  # pickle itself fails here; the same exception type was checked
    loaded = pickle.loads(data)
    if name not in _NO_EQUALITY:
        assert loaded == obj
    else:
        assert type(loaded) is type(obj)


def test_state_setter_used(protocol):
    """A reduce 6-tuple's state_setter is recorded and called on load."""
    obj = WithStateSetter(a=1)
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded.a == 1 and loaded.via_state_setter is True


def test_reduce_ex_receives_protocol(protocol):
    """``__reduce_ex__`` is called with the protocol being used."""
    data = cloudpickle.dumps(ReduceExByProtocol("v"), protocol=protocol)
    assert pickle.loads(data).proto_seen == protocol


def test_exception_round_trip(protocol):
    """Exception instances keep their args and attributes."""
    exc = _exception_with_attrs()
    data = assert_dumps_like_pickle(exc, protocol)
    loaded = pickle.loads(data)
    assert loaded.args == exc.args and loaded.custom == "attribute"


def test_self_referential_instance(protocol):
    """An instance whose ``__dict__`` refers to itself loads with the cycle intact."""
    obj = make_plain(name="self")
    obj.me = obj
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded.me is loaded and loaded.name == "self"


def test_recursive_through_reduce_args(protocol):
    """A list reachable from its own reduce arguments (recursion through REDUCE)."""
    holder = []
    obj = Reduce2(holder, 1)
    holder.append(obj)
    # pickle raises or succeeds depending on the shape; cloudpickle must do the same.
    assert_dumps_like_pickle([obj, holder], protocol)


def test_copyreg_registration(protocol):
    """A ``copyreg.pickle`` registration is used (and beats ``__reduce__``), like pickle."""
    copyreg.pickle(RegisteredViaCopyreg, _reduce_registered)
    try:
        obj = [RegisteredViaCopyreg(7), RegisteredViaCopyreg(8)]
        data = assert_dumps_like_pickle(obj, protocol)
        assert pickle.loads(data) == obj
    finally:
        del copyreg.dispatch_table[RegisteredViaCopyreg]
    with pytest.raises(AssertionError, match="copyreg registration must win"):
        cloudpickle.dumps(RegisteredViaCopyreg(1), protocol=protocol)


def test_copyreg_registration_for_builtin_container_ignored(protocol):
    """Like pickle, a dispatch entry for an exact builtin container type (list) is
    ignored: builtin containers are saved natively."""

    def reduce_list(obj):
        return (tuple, (tuple(obj),))

    copyreg.pickle(list, reduce_list)
    try:
        obj = [1, [2, 3]]
        data = assert_dumps_like_pickle(obj, protocol)
    finally:
        del copyreg.dispatch_table[list]
    assert pickle.loads(data) == obj


def test_module_level_instance_of_test_class_round_trips_in_memory(protocol):
    """An instance graph mixing every case loads back with shared parts shared."""
    shared = make_plain(tag="shared")
    obj = {"a": Reduce2(shared, 1), "b": [shared, Reduce3(shared)]}
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded["a"].a is loaded["b"][0] is loaded["b"][1].a


# ---------------------------------------------------------------------------
# Temporary objects created during pickling
# ---------------------------------------------------------------------------


class FreshArgs(EqByDict):
    """Each ``__reduce__`` call builds brand-new argument objects.

    The memo must keep them alive (as pickle's does): if a temporary were freed,
    its id could be reused by the next temporary and turn into a bogus memo hit.
    """

    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return (FreshArgs, (self.n,), {"n": self.n, "tmp_list": [self.n], "tmp_str": f"s{self.n}"})

    def __eq__(self, other):
        return type(other) is FreshArgs and other.n == self.n


class FreshState(EqByDict):
    """``__getstate__`` returning a fresh dict with fresh values each time."""

    def __init__(self, n):
        self.n = n

    def __getstate__(self):
        return {"n": self.n, "fresh": [self.n, str(self.n)], "pair": (self.n, [self.n])}

    def __setstate__(self, state):
        self.n = state["n"]


class FreshItems(EqByDict):
    """A dictitems iterator yielding freshly built pairs and values."""

    def __init__(self, n):
        self.mapping = {i: [i] for i in range(n)}

    def __setitem__(self, key, value):
        self.mapping[key] = value

    def __reduce__(self):
        return (FreshItems, (0,), None, None, ((k, list(v)) for k, v in self.mapping.items()))


@pytest.mark.parametrize("cls", [FreshArgs, FreshState, FreshItems], ids=lambda c: c.__name__)
def test_temporaries_created_during_reduce(cls, protocol):
    """Objects created on the fly by reduce methods never alias each other in the memo."""
    obj = [cls(i) for i in range(300)]
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


class LiesAboutClass:
    """``__class__`` reports another class: pickle's checks use ``obj.__class__``."""

    @property
    def __class__(self):
        return Plain


@pytest.mark.parametrize("protocol_", [0, 1, 2, 3, 4, 5])
def test_object_lying_about_its_class(protocol_):
    """An instance whose ``__class__`` differs from its type: same outcome as pickle."""
    obj = LiesAboutClass()
    obj.attr = 1
    assert_dumps_like_pickle(obj, protocol_)


class Member:
    """Hashable by identity, with a ``__dict__``."""


def test_frozenset_recursion_through_instance(protocol):
    """A frozenset containing an object whose state refers back to the frozenset."""
    member = Member()
    fs = frozenset({member, "x"})
    member.owner = fs
    data = assert_dumps_like_pickle([fs, member], protocol)
    if data is not None:
        loaded_fs, loaded_member = pickle.loads(data)
        assert loaded_member in loaded_fs


def test_tuple_recursion_through_instance(protocol):
    """A tuple containing an object whose state refers back to the tuple."""
    member = Member()
    tup = (member, "x", [member])
    member.owner = tup
    data = assert_dumps_like_pickle(tup, protocol)
    if data is not None:
        loaded = pickle.loads(data)
        assert loaded[0].owner is loaded


# ---------------------------------------------------------------------------
# copyreg extension codes (EXT1 / EXT2 / EXT4)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1, 255, 256, 65535, 65536, 0x7FFFFFFF], ids=lambda c: f"code{c}")
def test_copyreg_extension_codes(code, protocol):
    """Globals registered with ``copyreg.add_extension`` are written as EXT1/EXT2/EXT4
    from protocol 2 on, exactly like pickle."""
    key = ("_importable", "Point")
    if key in copyreg._extension_registry or code in copyreg._inverted_registry:
        pytest.skip("extension code already in use")
    copyreg.add_extension(*key, code)
    try:
        obj = [_importable.Point(1, 2), _importable.Point, _importable.Point(3, 4)]
        data = assert_dumps_like_pickle(obj, protocol)
        assert pickle.loads(data) == obj
        if protocol >= 2:
            assert b"Point" not in data
    finally:
        copyreg.remove_extension(*key, code)
    # Removed again: back to the plain global.
    assert b"Point" in cloudpickle.dumps(_importable.Point, protocol=protocol)


def test_functools_partial_identical_to_pickle(protocol):
    """functools.partial is written natively: same bytes as pickle's reduce,
    with and without an instance dict (created or not)."""
    import functools
    import operator

    with_attr = functools.partial(operator.add, 2)
    with_attr.attr = 3
    touched = functools.partial(operator.mul)
    touched.__dict__  # noqa: B018 - creates an empty instance dict
    cases = [
        functools.partial(print, 1, sep="-"),
        functools.partial(print),
        with_attr,
        touched,
        [functools.partial(max, 1)] * 2,
    ]
    for case in cases:
        assert cloudpickle.dumps(case, protocol) == pickle.dumps(case, protocol)
        pickle.loads(cloudpickle.dumps(case, protocol))


def test_functools_partial_in_containers_and_cycles(protocol):
    """The partial's reduction is written without building its tuples: the
    memo indices still match pickle's, for partials held only by a tuple or
    list (their args and keywords then have no other holder), shared ones,
    nested ones, and partials that reach themselves."""
    import functools
    import operator

    shared = functools.partial(operator.add, 1)
    holder = []
    self_ref = functools.partial(operator.add, holder)
    holder.append(self_ref)
    in_dict = functools.partial(operator.mul, 2)
    in_dict.me = in_dict
    cases = [
        [(functools.partial(max, i, key=abs), (i,), {"scale": 2}) for i in range(300)],
        ((functools.partial(functools.partial(min, 3), 4), shared), shared),
        {"p": [self_ref, self_ref], "q": in_dict},
    ]
    for case in cases:
        assert cloudpickle.dumps(case, protocol) == pickle.dumps(case, protocol)
        pickle.loads(cloudpickle.dumps(case, protocol))


def test_builtin_types_follow_builtins_after_caching(protocol):
    """Builtin types are saved under the names they were first found under,
    as long as ``builtins`` still holds them there: once the name points
    elsewhere, the type can no longer be found by reference and goes by
    value (as the reference cloudpickle does; pickle refuses it)."""
    import builtins

    data = [object, property, int, [property]]
    assert cloudpickle.dumps(data, protocol) == pickle.dumps(data, protocol)
    original = builtins.property
    builtins.property = type("property", (), {})
    try:
        with pytest.raises(pickle.PicklingError):
            pickle.dumps(data, protocol)
        # On PyPy too, where the type's builtin functions are rebuilt from
        # PyPy's builtin code, as the reference does there.
        assert b"_make_skeleton_class" in cloudpickle.dumps(data, protocol)
    finally:
        builtins.property = original
    assert cloudpickle.dumps(data, protocol) == pickle.dumps(data, protocol)
