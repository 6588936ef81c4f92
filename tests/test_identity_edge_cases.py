"""Byte-identity with ``pickle.dumps`` for builtin data and by-reference globals.

For builtin data, ``cloudpickle.dumps(obj, protocol=p)`` must produce exactly
the bytes of ``pickle.dumps(obj, protocol=p)`` for every protocol, and
``pickle.loads`` must give back an equal object.
"""

import collections
import functools
import io
import itertools
import math
import operator
import os
import pickle
import sys
import types

import _importable
import cloudpickle
import pytest
from _helpers import PROTOCOLS, assert_dumps_like_pickle, assert_same_bytes, equal_or_both_nan

# ---------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------

INTS = [
    0,
    1,
    -1,
    2,
    127,
    128,
    -128,
    -129,
    255,
    256,
    -255,
    -256,
    65535,
    65536,
    -65536,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    10**100,
    -(10**100),
    # LONG1 holds at most 255 bytes; beyond that LONG4 is used.
    2 ** (8 * 255 - 1) - 1,
    2 ** (8 * 255 - 1),
    -(2 ** (8 * 255 - 1)),
    -(2 ** (8 * 255 - 1)) - 1,
    2 ** (8 * 256),
    7**5000,
    -(7**5000),
]

FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    1 / 3,
    1e16,
    1e22,
    1e-7,
    123456789.123456789,
    sys.float_info.max,
    sys.float_info.min,
    5e-324,
    -5e-324,
    math.inf,
    -math.inf,
    math.nan,
    -math.nan,
    math.pi,
]

COMPLEXES = [0j, 1 + 2j, -0.0 - 0.0j, complex(math.inf, -math.inf), complex(math.nan, 1)]

STRINGS = [
    "",
    "a",
    "hello world",
    "é",
    "ü" * 1000,
    "日本語",
    "😀",
    "a😀b",
    "\ud800",
    "\udfff",
    "a\ud800b",
    "\udc80\udcff",  # lone surrogates
    "\\",
    "\n",
    "\r",
    "\x00",
    "\x1a",
    "\r\n",
    "\t",
    "\x7f",
    "\x80",
    "\xff",
    "\u0100",
    "\\u0041",
    "\\U0001F600",
    "\\x41",
    "back\\slash\nnew\rline\x00nul\x1asub",
    "\u2028\u2029",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "x" * 255,
    "x" * 256,
    "é" * 128,
    "x" * 65535,
    "x" * 65536,
]

BYTES = [
    b"",
    b"a",
    b"\x00",
    b"\xff",
    bytes(range(256)),
    b"\x00" * 255,
    b"\x00" * 256,
    b"a" * 65535,
    b"\\\n\r\x1a",
    "é日本".encode(),
]

BYTEARRAYS = [bytearray(), bytearray(b"abc"), bytearray(range(256)), bytearray(300)]

SCALARS = (
    [None, True, False, Ellipsis, NotImplemented]
    + INTS
    + FLOATS
    + COMPLEXES
    + STRINGS
    + BYTES
    + BYTEARRAYS
)


PYPY = sys.implementation.name == "pypy"
_BUILTIN_TYPE_NAMES = {v for v in vars(types).values() if type(v) is type}


def _check_pypy_builtin_method(obj, protocol):
    """On PyPy a builtin method bound to an object is a ``types.MethodType``,
    which cloudpickle's dispatch table reduces as ``MethodType(function, self)``
    (so does the reference), where ``pickle`` calls its ``__reduce__``: the
    bytes differ by design; the method must come back bound to an equal object."""
    loaded = pickle.loads(cloudpickle.dumps(obj, protocol))
    assert type(loaded) is types.MethodType
    assert loaded.__name__ == obj.__name__
    assert loaded.__self__ == obj.__self__


def _finite(obj):
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, complex):
        return math.isfinite(obj.real) and math.isfinite(obj.imag)
    return True


def _ident(obj):
    text = repr(obj)
    return text if len(text) <= 40 else f"{type(obj).__name__}-len{len(text)}"


@pytest.mark.parametrize("obj", SCALARS, ids=_ident)
def test_scalar_identity(obj, protocol):
    """Scalars (None, bool, int, float, complex, str, bytes, bytearray) pickle identically."""
    data = assert_dumps_like_pickle(obj, protocol)
    assert data is not None
    if protocol == 0 and PYPY and not _finite(obj):
        pytest.skip(
            "PyPy's unpickler cannot read protocol 0's text form of inf and nan "
            "(ValueError), which CPython writes and reads; the bytes were checked"
        )
    loaded = pickle.loads(data)
    if isinstance(obj, (float, complex)):
        assert equal_or_both_nan(loaded, obj)
    else:
        assert type(loaded) is type(obj) and loaded == obj


def test_float_bit_patterns_survive(protocol):
    """Negative zero and NaN keep their bits through cloudpickle + pickle.loads."""
    for value in (-0.0, math.nan, -math.nan, math.inf):
        data = cloudpickle.dumps(value, protocol=protocol)
        assert_same_bytes(data, pickle.dumps(value, protocol=protocol))
        if protocol == 0 and PYPY and not _finite(value):
            continue  # PyPy's unpickler cannot read "inf"/"nan" text (see above)
        loaded = pickle.loads(data)
        assert math.isnan(loaded) == math.isnan(value)
        if protocol >= 1 or not math.isnan(value):  # protocol 0 writes NaN as text
            assert math.copysign(1.0, loaded) == math.copysign(1.0, value)


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------

CONTAINERS = [
    [],
    (),
    {},
    set(),
    frozenset(),
    [1],
    (1,),
    (1, 2),
    (1, 2, 3),
    (1, 2, 3, 4),
    {"a": 1},
    {1},
    frozenset({1}),
    [None, True, 1.5, "s", b"b"],
    {"k": [1, 2], 3: (4, 5), (6, 7): {"x": None}, None: frozenset({8}), b"b": 1.0},
    ((), ((),), (((),),)),
    [[[]], [[], []]],
    {frozenset({1, 2}), (3, 4), "five"},
    frozenset({(1, 2), "a", frozenset({3})}),
    {"nested": {"deeper": {"deepest": [set(), {1: 2}]}}},
    [bytearray(b"x"), (bytearray(b"y"),)],
    dict([(1, "int key"), (1.5, "float key"), (True, "bool key collides with 1")]),
]


@pytest.mark.parametrize("obj", CONTAINERS, ids=_ident)
def test_container_identity(obj, protocol):
    """Lists, tuples, dicts, sets, frozensets (and nestings of them) pickle identically."""
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


@pytest.mark.parametrize("size", [0, 1, 2, 999, 1000, 1001, 2000, 2001, 3000, 3001])
@pytest.mark.parametrize("kind", ["list", "dict", "set", "frozenset", "tuple"])
def test_batching_boundaries(kind, size, protocol):
    """Containers around the 1000-item batch size of APPENDS/SETITEMS/ADDITEMS."""
    build = {
        "list": lambda: [f"item{i}" for i in range(size)],
        "dict": lambda: {f"k{i}": i for i in range(size)},
        "set": lambda: set(range(size)),
        "frozenset": lambda: frozenset(range(size)),
        "tuple": lambda: tuple(range(size)),
    }[kind]
    obj = build()
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


def test_single_element_containers(protocol):
    """One-element list/dict/set use APPEND/SETITEM/ADDITEMS like pickle does."""
    for obj in ([0], {0: 0}, {0}, frozenset({0}), (0,), [[0]], {"a": {"b": 0}}):
        assert_dumps_like_pickle(obj, protocol)


# ---------------------------------------------------------------------------
# Shared and recursive references
# ---------------------------------------------------------------------------


def _shared_structures():
    shared_list = [1, 2]
    shared_dict = {"a": 1}
    shared_tuple = (1, [2])
    shared_str = "a string long enough to not be interned " * 3
    shared_bytes = b"some bytes" * 5
    shared_ba = bytearray(b"bytearray")
    shared_set = {1, 2}
    shared_fs = frozenset({3, 4})
    return {
        "list-twice": [shared_list, shared_list],
        "dict-values": {"x": shared_dict, "y": shared_dict},
        "tuple-twice": (shared_tuple, shared_tuple),
        "str-twice": [shared_str, shared_str],
        "bytes-twice": [shared_bytes, shared_bytes, (shared_bytes,)],
        "bytearray-twice": [shared_ba, shared_ba],
        "set-twice": [shared_set, shared_set],
        "frozenset-twice": [shared_fs, (shared_fs, shared_fs)],
        "mixed": {
            "a": shared_list,
            "b": (shared_list, shared_dict),
            "c": [shared_dict, shared_tuple],
        },
        "equal-not-same": [[1, 2], [1, 2]],
        "empty-tuple-twice": [(), ()],
        "key-and-value": {shared_str: shared_str},
        "empty-str-and-bytes-twice": ["", "", b"", b"", bytearray(), ()],
    }


SHARED = _shared_structures()


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_references(name, protocol):
    """Objects referenced several times are memoized exactly as pickle does."""
    obj = SHARED[name]
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


def test_shared_reference_identity_preserved(protocol):
    """After loading, a list referenced twice is still one object."""
    inner = [1, 2, 3]
    data = cloudpickle.dumps([inner, {"again": inner}], protocol=protocol)
    assert_same_bytes(data, pickle.dumps([inner, {"again": inner}], protocol=protocol))
    loaded = pickle.loads(data)
    assert loaded[0] is loaded[1]["again"]


def _recursive_structures():
    lst = [1]
    lst.append(lst)

    dct = {"k": 1}
    dct["self"] = dct

    # A tuple containing a list containing the tuple.
    inner = []
    tup = (inner, "t")
    inner.append(tup)

    # The same cycle reached through the list first.
    inner2 = ["first"]
    tup2 = (1, inner2)
    inner2.append(tup2)
    list_first = inner2

    # A tuple reached twice inside its own cycle.
    inner3 = []
    tup3 = (inner3, inner3)
    inner3.append(tup3)
    inner3.append(tup3)

    # Tuples nested inside a recursive tuple.
    inner4 = []
    tup4 = ((inner4,), ((inner4,),))
    inner4.append(tup4)

    # Mutual recursion between a dict and a list.
    a = []
    b = {"a": a}
    a.append(b)

    # A list containing itself many times plus a set of tuples referencing it.
    many = []
    many.extend([many] * 5)

    # A frozenset inside a tuple inside a recursive list.
    fs_list = []
    fs_list.append((frozenset({1, 2}), fs_list))

    return {
        "list-contains-itself": lst,
        "dict-contains-itself": dct,
        "tuple-list-tuple": tup,
        "list-tuple-list": list_first,
        "tuple-twice-in-cycle": tup3,
        "nested-tuples-in-cycle": tup4,
        "dict-list-mutual": b,
        "list-many-self-refs": many,
        "frozenset-in-cycle": fs_list,
        "cycle-inside-container": {"x": [lst, dct, tup]},
    }


RECURSIVE = _recursive_structures()


@pytest.mark.parametrize("name", sorted(RECURSIVE))
def test_recursive_structures(name, protocol):
    """Self-referential lists, dicts and tuple/list cycles pickle identically."""
    assert_dumps_like_pickle(RECURSIVE[name], protocol)


def test_recursive_list_loads_back(protocol):
    """A list containing itself loads as a list containing itself."""
    data = cloudpickle.dumps(RECURSIVE["list-contains-itself"], protocol=protocol)
    loaded = pickle.loads(data)
    assert loaded[0] == 1 and loaded[1] is loaded


def test_recursive_tuple_loads_back(protocol):
    """A tuple inside a list inside the tuple loads back with the cycle intact."""
    data = cloudpickle.dumps(RECURSIVE["tuple-list-tuple"], protocol=protocol)
    loaded = pickle.loads(data)
    assert isinstance(loaded, tuple) and loaded[1] == "t"
    assert loaded[0][0] is loaded


@pytest.mark.parametrize("depth", [1, 10, 100, 300])
@pytest.mark.parametrize("kind", ["list", "dict", "tuple", "mixed"])
def test_moderately_deep_nesting(kind, depth, protocol):
    """Nesting a few hundred levels deep pickles identically (no spurious depth error)."""
    obj = "leaf"
    for i in range(depth):
        if kind == "list" or (kind == "mixed" and i % 3 == 0):
            obj = [obj]
        elif kind == "dict" or (kind == "mixed" and i % 3 == 1):
            obj = {"k": obj}
        else:
            obj = (obj,)
    limit = sys.getrecursionlimit()
    if PYPY:
        # The oracle there is pickle.py, a few Python frames per level: more
        # than the default limit at 300 levels (CPython's _pickle.c uses none).
        sys.setrecursionlimit(max(limit, 10 * depth + 500))
    try:
        data = assert_dumps_like_pickle(obj, protocol)
    finally:
        sys.setrecursionlimit(limit)
    assert pickle.loads(data) == obj


# ---------------------------------------------------------------------------
# Memo indices, frames and big payloads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [250, 255, 256, 257, 300, 1000])
def test_memo_indices_cross_256(count, protocol):
    """Past 256 memo entries BINPUT/BINGET become LONG_BINPUT/LONG_BINGET."""
    objs = [[i] for i in range(count)]
    obj = objs + objs[::-1]  # second half: memo references to every entry
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded == obj
    assert loaded[0] is loaded[-1]


def test_memo_indices_beyond_65536():
    """Memo indices that need more than two bytes."""
    objs = [(i, [i]) for i in range(70_000)]
    obj = [objs, objs[-1], objs[0]]
    for protocol in (0, 2, 4, 5):
        assert_dumps_like_pickle(obj, protocol)


def test_frames_over_64k(protocol):
    """A list of many strings (> 200 KB in total) is split into frames like pickle does."""
    obj = [f"string number {i:06d} with some padding" for i in range(6000)]
    assert sum(map(len, obj)) > 200_000
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


def test_frames_with_mixed_sizes(protocol):
    """Small items around large payloads: frames are committed before big writes."""
    obj = []
    for i in range(40):
        obj.append("s" * (i * 997 % 5000))
        obj.append(b"b" * (i * 7919 % 70_000))
        obj.append(i)
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


LARGE_SIZES = [65_535, 65_536, 65_537, 200_000, 3 * 1024 * 1024 + 7]


@pytest.mark.parametrize("size", LARGE_SIZES)
@pytest.mark.parametrize("kind", ["bytes", "str", "bytearray", "str-nonascii"])
def test_large_payloads(kind, size, protocol):
    """Payloads of 64 KiB and more bypass framing exactly as pickle does."""
    obj = {
        "bytes": lambda: bytes(range(256)) * (size // 256) + b"x" * (size % 256),
        "str": lambda: "abcdefgh" * (size // 8) + "z" * (size % 8),
        "bytearray": lambda: bytearray(b"q" * size),
        "str-nonascii": lambda: "é" * (size // 2),
    }[kind]()
    data = assert_dumps_like_pickle(obj, protocol)
    assert pickle.loads(data) == obj


def test_large_payload_inside_container(protocol):
    """A big bytes object shared twice inside a container."""
    big = b"\x01" * 100_000
    obj = ["before", big, {"again": big}, "after"]
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded[1] is loaded[2]["again"]


# ---------------------------------------------------------------------------
# Globals by reference: functions, classes, builtins
# ---------------------------------------------------------------------------

GLOBALS = [
    len,
    print,
    isinstance,
    os.path.join,
    math.sqrt,
    operator.add,
    functools.reduce,
    itertools.chain,
    itertools.zip_longest,
    collections.OrderedDict,
    collections.UserDict,
    collections.defaultdict,
    io.BytesIO,
    io.StringIO,
    int,
    str,
    bytes,
    bytearray,
    float,
    complex,
    bool,
    list,
    tuple,
    dict,
    set,
    frozenset,
    object,
    type,
    range,
    slice,
    zip,
    map,
    filter,
    enumerate,
    reversed,
    property,
    staticmethod,
    classmethod,
    super,
    type(None),
    type(NotImplemented),
    type(Ellipsis),
    ValueError,
    KeyError,
    OSError,
    IOError,
    EnvironmentError,
    ConnectionError,
    StopIteration,
    Exception,
    BaseException,
    RecursionError,
    UnicodeDecodeError,
    pickle.PicklingError,
    pickle.Pickler,
    _importable.module_function,
    _importable.ModuleClass,
    _importable.Outer,
    _importable.Outer.Inner,
    _importable.Outer.Inner.Deepest,
    _importable.Outer.Inner.method,
    _importable.Outer.static_fn,
    _importable.Point,
    _importable.FrozenRecord,
    _importable.Color,
    _importable.set_state,
    _importable.sample_data,
]


def _global_id(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


@pytest.mark.parametrize("obj", GLOBALS, ids=_global_id)
def test_global_by_reference(obj, protocol):
    """Importable functions, classes and builtins pickle by reference, byte-identically
    (including the protocol<4 ``getattr`` form for nested qualnames and the
    Python 2 name mapping of protocols 0-2)."""
    if PYPY and obj in _BUILTIN_TYPE_NAMES:
        # On PyPy `classmethod` is `types.ClassMethodDescriptorType`: cloudpickle
        # (as the reference) names such types through `_builtin_type`.
        assert pickle.loads(cloudpickle.dumps(obj, protocol)) is obj
        return
    data = assert_dumps_like_pickle(obj, protocol)
    assert data is not None
    if protocol >= 3:
        assert pickle.loads(data) is obj
    else:
        # Python 2 names can be lossy (ConnectionError -> exceptions.OSError).
        assert pickle.loads(data) is pickle.loads(pickle.dumps(obj, protocol=protocol))


@pytest.mark.parametrize(
    "obj", [_importable.Ñandú, _importable.función_ñ], ids=["class", "function"]
)
def test_non_ascii_global_names(obj, protocol):
    """Non-ASCII global names: identical bytes, or the same error where pickle fails."""
    data = assert_dumps_like_pickle(obj, protocol)
    if data is not None:
        assert pickle.loads(data) is obj


def test_globals_repeated_are_memoized(protocol):
    """The same global twice is written once then fetched from the memo."""
    obj = [len, len, _importable.Outer.Inner, _importable.Outer.Inner, (len, int, int)]
    assert_dumps_like_pickle(obj, protocol)


BUILTIN_METHODS = [
    [].append,
    [1, 2].append,
    {}.get,
    {"a": 1}.items,
    "abc".upper,
    (1).bit_length,
    str.upper,
    dict.fromkeys,
    bytes.fromhex,
    int.from_bytes,
    object.__init__,
    list.__len__,
    b"x".startswith,
]


@pytest.mark.parametrize("obj", BUILTIN_METHODS, ids=repr)
def test_builtin_methods(obj, protocol):
    """Bound builtin methods and method descriptors pickle like pickle does."""
    if PYPY and type(obj) is types.MethodType:
        _check_pypy_builtin_method(obj, protocol)
        return
    data = assert_dumps_like_pickle(obj, protocol)
    if data is not None:
        loaded = pickle.loads(data)
        assert loaded.__name__ == obj.__name__


def test_default_protocol_matches_highest():
    """``cloudpickle.dumps(obj)`` without protocol uses pickle.HIGHEST_PROTOCOL."""
    obj = {"a": [1, 2.5, "x", (None, True)], "b": _importable.Outer.Inner}
    assert_same_bytes(cloudpickle.dumps(obj), pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def test_negative_protocol_means_highest():
    """``protocol=-1`` selects the highest protocol, like pickle."""
    obj = [1, "two", (3.0,)]
    assert_same_bytes(cloudpickle.dumps(obj, protocol=-1), pickle.dumps(obj, protocol=-1))
    assert_same_bytes(
        cloudpickle.dumps(obj, -1), pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    )


@pytest.mark.parametrize("protocol_arg", PROTOCOLS)
def test_protocol_positional(protocol_arg):
    """The protocol may also be passed positionally."""
    obj = {"x": [1, 2]}
    assert_same_bytes(cloudpickle.dumps(obj, protocol_arg), pickle.dumps(obj, protocol_arg))


@pytest.mark.parametrize("depth", [600, 900, 1500])
@pytest.mark.parametrize("kind", ["list", "dict", "tuple"])
def test_deeper_than_pickles_default_limit(kind, depth, protocol):
    """Nesting deeper than pickle manages with the default recursion limit: cloudpickle
    either raises its PicklingError or writes exactly what pickle writes when given
    a higher recursion limit."""
    obj = "leaf"
    for _ in range(depth):
        obj = [obj] if kind == "list" else ({"k": obj} if kind == "dict" else (obj,))
    try:
        actual = cloudpickle.dumps(obj, protocol=protocol)
    except pickle.PicklingError as exc:
        assert "recursion" in str(exc)
        return
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 4 * depth + 1000))
    try:
        expected = pickle.dumps(obj, protocol=protocol)
    except RecursionError:
        pytest.skip("pickle cannot produce a reference pickle at this depth")
    finally:
        sys.setrecursionlimit(old_limit)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual) == obj


@pytest.mark.parametrize("first", [65_000, 65_400, 65_500, 65_510, 65_520, 65_530])
def test_frame_boundary_positions(first, protocol):
    """Items ending right around the 64 KiB frame target: frames are cut at the same
    opcode boundaries as pickle's."""
    obj = ["a" * first, "b", "c" * 30, b"d" * 40, [1, 2], "e" * 70_000, "f"]
    assert_dumps_like_pickle(obj, protocol)
    obj2 = [("x" * 10, i) for i in range(first // 14)]
    assert_dumps_like_pickle(obj2, protocol)
