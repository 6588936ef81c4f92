"""The public API surface and the ``Pickler`` class with its extension points.

Extension points are checked against a ``pickle.Pickler`` subclass doing the
same thing: the bytes written must be identical.
"""

import collections
import collections.abc
import copyreg
import io
import pickle
import re
import sys
import types

import _importable
import cloudpickle
import pytest
from _helpers import PROTOCOLS, assert_same_bytes, assert_same_outcome

# ---------------------------------------------------------------------------
# API surface
# ---------------------------------------------------------------------------


def test_loads_and_load_are_pickles():
    """``loads``/``load`` are pickle's own functions."""
    assert cloudpickle.loads is pickle.loads
    assert cloudpickle.load is pickle.load


def test_default_protocol():
    """``DEFAULT_PROTOCOL`` is the highest protocol pickle supports."""
    assert cloudpickle.DEFAULT_PROTOCOL == pickle.HIGHEST_PROTOCOL


def test_version_is_pep440_and_at_least_3():
    """``__version__`` is a PEP 440 version string, 3.0 or later."""
    version = cloudpickle.__version__
    assert isinstance(version, str)
    pep440 = (
        r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
        r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?"
        r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?$"
    )
    assert re.match(pep440, version), version
    major = int(re.match(r"^(?:[0-9]+!)?([0-9]+)", version).group(1))
    assert major >= 3


def test_pickler_class_hierarchy():
    """``Pickler`` subclasses ``pickle.Pickler``; ``CloudPickler`` is an alias."""
    assert issubclass(cloudpickle.Pickler, pickle.Pickler)
    assert cloudpickle.CloudPickler is cloudpickle.Pickler
    assert isinstance(cloudpickle.Pickler(io.BytesIO()), pickle.Pickler)


def test_class_level_dispatch_table():
    """The class-level dispatch table chains a private dict in front of copyreg's."""
    table = cloudpickle.Pickler.dispatch_table
    assert isinstance(table, collections.ChainMap)
    assert table.maps[-1] is copyreg.dispatch_table
    assert len(table.maps) == 2
    assert cloudpickle.CloudPickler.dispatch is table
    assert cloudpickle.Pickler.dispatch is table


def test_registry_functions_exist():
    """The pickle-by-value registry functions are exported."""
    for name in (
        "register_pickle_by_value",
        "unregister_pickle_by_value",
        "list_registry_pickle_by_value",
    ):
        assert callable(getattr(cloudpickle, name))


def test_registry_register_list_unregister():
    """Registering a module lists it; unregistering removes it again."""
    module = types.ModuleType("_cloudpickle_test_registry_dummy")
    sys.modules[module.__name__] = module
    try:
        assert module.__name__ not in cloudpickle.list_registry_pickle_by_value()
        cloudpickle.register_pickle_by_value(module)
        try:
            assert module.__name__ in cloudpickle.list_registry_pickle_by_value()
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        assert module.__name__ not in cloudpickle.list_registry_pickle_by_value()
    finally:
        del sys.modules[module.__name__]


def test_registry_rejects_bad_input():
    """Non-modules, modules not in sys.modules, and unregistered modules are rejected."""
    with pytest.raises(ValueError):
        cloudpickle.register_pickle_by_value("not a module")
    with pytest.raises(ValueError):
        cloudpickle.register_pickle_by_value(types.ModuleType("_never_imported_module_xyz"))
    with pytest.raises(ValueError):
        cloudpickle.unregister_pickle_by_value(_importable)
    with pytest.raises(ValueError):
        cloudpickle.unregister_pickle_by_value(42)


def test_list_registry_returns_a_copy():
    """Mutating the returned collection does not change the registry."""
    listed = cloudpickle.list_registry_pickle_by_value()
    listed.add("_bogus_module_name")
    assert "_bogus_module_name" not in cloudpickle.list_registry_pickle_by_value()


def test_submodules():
    """``cloudpickle.cloudpickle`` and the ``cloudpickle_fast`` alias expose the API."""
    import cloudpickle.cloudpickle as inner
    import cloudpickle.cloudpickle_fast as fast

    assert inner.dumps is cloudpickle.dumps
    assert inner.Pickler is cloudpickle.Pickler
    assert fast.dumps is cloudpickle.dumps
    assert fast.Pickler is cloudpickle.Pickler
    assert fast.CloudPickler is cloudpickle.Pickler
    from cloudpickle.cloudpickle_fast import dumps  # noqa: F401 - name must be importable

    assert dumps is cloudpickle.dumps


def test_all_names_exist():
    """Every name in ``cloudpickle.__all__`` is defined."""
    for name in cloudpickle.__all__:
        assert hasattr(cloudpickle, name), name


# ---------------------------------------------------------------------------
# dumps / dump / Pickler.dump
# ---------------------------------------------------------------------------

DATA = {
    "list": [1, 2.5, "three", b"four", None],
    "tuple": (True, (1 + 2j,)),
    "class": _importable.Outer.Inner,
}


def test_dumps_returns_bytes(protocol):
    """``dumps`` returns a ``bytes`` object equal to pickle's."""
    data = cloudpickle.dumps(DATA, protocol=protocol)
    assert type(data) is bytes
    assert_same_bytes(data, pickle.dumps(DATA, protocol=protocol))


def test_dump_to_bytesio(protocol):
    """``dump`` into a BytesIO writes pickle's bytes and returns None."""
    buf = io.BytesIO()
    assert cloudpickle.dump(DATA, buf, protocol=protocol) is None
    assert_same_bytes(buf.getvalue(), pickle.dumps(DATA, protocol=protocol))


def test_dump_positional_protocol(protocol):
    """``dump(obj, file, protocol)`` accepts the protocol positionally."""
    buf = io.BytesIO()
    cloudpickle.dump(DATA, buf, protocol)
    assert_same_bytes(buf.getvalue(), pickle.dumps(DATA, protocol=protocol))


def test_dump_to_real_file(tmp_path, protocol):
    """``dump`` into a file opened for binary writing writes pickle's bytes."""
    path = tmp_path / "out.pkl"
    with open(path, "wb") as f:
        cloudpickle.dump(DATA, f, protocol=protocol)
    assert_same_bytes(path.read_bytes(), pickle.dumps(DATA, protocol=protocol))
    with open(path, "rb") as f:
        assert cloudpickle.load(f) == DATA


def test_dump_large_data_to_real_file(tmp_path, protocol):
    """Large payloads (streamed past the frame buffer) still equal pickle's bytes."""
    obj = [b"x" * 200_000, "y" * 100_000, [f"s{i}" for i in range(20_000)], bytearray(70_000)]
    path = tmp_path / "big.pkl"
    with open(path, "wb") as f:
        cloudpickle.dump(obj, f, protocol=protocol)
    assert_same_bytes(path.read_bytes(), pickle.dumps(obj, protocol=protocol))


def test_dump_default_protocol():
    """``dump`` without protocol uses ``DEFAULT_PROTOCOL``."""
    buf = io.BytesIO()
    cloudpickle.dump(DATA, buf)
    assert_same_bytes(buf.getvalue(), pickle.dumps(DATA, protocol=cloudpickle.DEFAULT_PROTOCOL))


class ChunkWriter:
    """A minimal file-like object: only a ``write`` method."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)


def test_dump_to_object_with_only_write(protocol):
    """Any object with a ``write`` method is a valid file; the concatenated writes
    equal pickle's bytes."""
    obj = [DATA, b"z" * 100_000]
    writer = ChunkWriter()
    cloudpickle.dump(obj, writer, protocol=protocol)
    assert_same_bytes(b"".join(writer.chunks), pickle.dumps(obj, protocol=protocol))


def test_pickler_default_protocol_header():
    """``Pickler(file)`` without protocol writes a DEFAULT_PROTOCOL pickle."""
    buf = io.BytesIO()
    cloudpickle.Pickler(buf).dump([1, 2])
    assert buf.getvalue()[:2] == bytes([0x80, cloudpickle.DEFAULT_PROTOCOL])
    assert_same_bytes(buf.getvalue(), pickle.dumps([1, 2], protocol=cloudpickle.DEFAULT_PROTOCOL))


def test_pickler_dump_returns_none(protocol):
    """``Pickler.dump`` writes pickle's bytes and returns None."""
    buf = io.BytesIO()
    assert cloudpickle.Pickler(buf, protocol=protocol).dump(DATA) is None
    assert_same_bytes(buf.getvalue(), pickle.dumps(DATA, protocol=protocol))


def _dump_sequence(pickler_cls, objs, protocol, clear_between=()):
    buf = io.BytesIO()
    pickler = pickler_cls(buf, protocol)
    for i, obj in enumerate(objs):
        if i in clear_between:
            pickler.clear_memo()
        pickler.dump(obj)
    return buf.getvalue()


def _memo_sequence():
    shared = [1, 2, 3]
    text = "a shared string that is not interned " * 2
    return [
        shared,
        shared,
        {"again": shared, "text": text},
        (text, shared),
        _importable.Point(shared, text),
    ]


def test_memo_persists_across_dumps(protocol):
    """Several ``dump`` calls on one Pickler reuse the memo, exactly like pickle.Pickler."""
    objs = _memo_sequence()
    expected = _dump_sequence(pickle.Pickler, objs, protocol)
    actual = _dump_sequence(cloudpickle.Pickler, objs, protocol)
    assert_same_bytes(actual, expected)
    # The second dump of the same list is a memo reference: shorter than the first.
    single = len(cloudpickle.dumps(objs[0], protocol=protocol))
    assert len(actual) > single


def test_memo_persisted_loads_as_shared(protocol):
    """Loading successive pickles with one Unpickler restores the sharing."""
    shared = ["x"]
    buf = io.BytesIO()
    pickler = cloudpickle.Pickler(buf, protocol)
    pickler.dump(shared)
    pickler.dump(shared)
    buf.seek(0)
    unpickler = pickle.Unpickler(buf)
    first, second = unpickler.load(), unpickler.load()
    assert first is second == ["x"]


def test_clear_memo(protocol):
    """``clear_memo()`` between dumps makes the next dump write objects again."""
    objs = _memo_sequence()
    for clear_between in [(1,), (1, 2, 3, 4), (3,)]:
        expected = _dump_sequence(pickle.Pickler, objs, protocol, clear_between)
        actual = _dump_sequence(cloudpickle.Pickler, objs, protocol, clear_between)
        assert_same_bytes(actual, expected)


def test_two_picklers_do_not_share_memo(protocol):
    """Each Pickler instance has its own memo."""
    shared = [1]
    buf1, buf2 = io.BytesIO(), io.BytesIO()
    p1 = cloudpickle.Pickler(buf1, protocol)
    p2 = cloudpickle.Pickler(buf2, protocol)
    p1.dump(shared)
    p2.dump(shared)
    assert_same_bytes(buf1.getvalue(), pickle.dumps(shared, protocol=protocol))
    assert_same_bytes(buf2.getvalue(), pickle.dumps(shared, protocol=protocol))


def test_dumps_calls_are_independent(protocol):
    """Module-level ``dumps`` keeps no memo between calls."""
    shared = [1, 2]
    first = cloudpickle.dumps(shared, protocol=protocol)
    second = cloudpickle.dumps(shared, protocol=protocol)
    assert first == second == pickle.dumps(shared, protocol=protocol)


# ---------------------------------------------------------------------------
# persistent_id
# ---------------------------------------------------------------------------


class External:
    """Stands for an object stored outside the pickle (e.g. in a database)."""

    def __init__(self, key):
        self.key = key


def _persistent_id(obj):
    if isinstance(obj, External):
        return ("external", obj.key)
    if isinstance(obj, str) and obj.startswith("ref:"):
        return obj[4:]
    return None


class CloudPidPickler(cloudpickle.Pickler):
    def persistent_id(self, obj):
        return _persistent_id(obj)


class PicklePidPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return _persistent_id(obj)


def _pickle_with(pickler_cls, obj, protocol):
    buf = io.BytesIO()
    pickler_cls(buf, protocol).dump(obj)
    return buf.getvalue()


def test_persistent_id_identical(protocol):
    """A ``persistent_id`` override produces pickle's PERSID/BINPERSID bytes."""
    if protocol == 0:
        obj = ["ref:alpha", ("ref:beta", 1), "plain", {"k": "ref:alpha"}]  # str pids only
    else:
        obj = [External(1), External("two"), "ref:beta", [External(1)], {"x": External(3)}]
    expected = _pickle_with(PicklePidPickler, obj, protocol)
    actual = _pickle_with(CloudPidPickler, obj, protocol)
    assert_same_bytes(actual, expected)
    assert b"P" in actual or b"Q" in actual


def test_persistent_id_round_trip(protocol):
    """Persistent ids are handed to the Unpickler's ``persistent_load``."""
    obj = ["ref:alpha", "plain"] if protocol == 0 else [External(5), "plain"]

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid):
            return ("loaded", pid)

    data = _pickle_with(CloudPidPickler, obj, protocol)
    loaded = Loader(io.BytesIO(data)).load()
    expected_pid = "alpha" if protocol == 0 else ("external", 5)
    assert loaded == [("loaded", expected_pid), "plain"]


def test_persistent_id_sees_every_object(protocol):
    """``persistent_id`` is consulted for the same objects, in the same order, as pickle's."""
    seen = {"cloud": [], "pickle": []}

    class CloudRecorder(cloudpickle.Pickler):
        def persistent_id(self, obj):
            seen["cloud"].append(repr(obj))
            return None

    class PickleRecorder(pickle.Pickler):
        def persistent_id(self, obj):
            seen["pickle"].append(repr(obj))
            return None

    shared = [3]
    obj = [
        None,
        True,
        1,
        2.5,
        "s",
        b"b",
        (1, 2),
        {"k": shared},
        shared,
        _importable.Point(1, 2),
        len,
    ]
    expected = _pickle_with(PickleRecorder, obj, protocol)
    actual = _pickle_with(CloudRecorder, obj, protocol)
    assert_same_bytes(actual, expected)
    assert seen["cloud"] == seen["pickle"]


@pytest.mark.parametrize("pid", [42, "non-ascii-é", "with\nnewline", ("tuple",)], ids=repr)
def test_persistent_id_protocol_0_odd_pids(pid):
    """At protocol 0 the pid is written as text: same bytes or same error as pickle."""

    def make(base):
        class P(base):
            def persistent_id(self, obj):
                return pid if obj == "target" else None

        return P

    assert_same_outcome(
        lambda: _pickle_with(make(cloudpickle.Pickler), ["target", 1], 0),
        lambda: _pickle_with(make(pickle.Pickler), ["target", 1], 0),
    )


def test_persistent_id_assigned_on_instance(protocol):
    """A ``persistent_id`` callable assigned on the instance is honoured like pickle's."""
    obj = ["ref:abc", "other"]

    class PlainPickleSubclass(pickle.Pickler):
        pass  # has an instance __dict__, like cloudpickle.Pickler

    def run(cls):
        buf = io.BytesIO()
        pickler = cls(buf, protocol)
        pickler.persistent_id = _persistent_id
        pickler.dump(obj)
        return buf.getvalue()

    expected = run(PlainPickleSubclass)
    actual = run(cloudpickle.Pickler)
    assert_same_bytes(actual, expected)
    assert actual != pickle.dumps(obj, protocol=protocol)


def test_persistent_id_returning_falsy_non_none(protocol):
    """Only ``None`` means "no persistent id": 0 and "" are ids like in pickle."""

    def make(base, value):
        class P(base):
            def persistent_id(self, obj):
                return value if obj == "target" else None

        return P

    for value in (0, "", False):
        if protocol == 0 and not isinstance(value, str):
            continue
        assert_same_outcome(
            lambda: _pickle_with(make(cloudpickle.Pickler, value), ["target"], protocol),
            lambda: _pickle_with(make(pickle.Pickler, value), ["target"], protocol),
        )


# ---------------------------------------------------------------------------
# reducer_override
# ---------------------------------------------------------------------------


def _override(obj):
    if isinstance(obj, _importable.Point):
        return (complex, (obj.x, obj.y))
    if isinstance(obj, External):
        return (External, (obj.key,), {"overridden": True})
    return NotImplemented


class CloudOverridePickler(cloudpickle.Pickler):
    def reducer_override(self, obj):
        result = _override(obj)
        if result is NotImplemented:
            return super().reducer_override(obj)
        return result


class PickleOverridePickler(pickle.Pickler):
    def reducer_override(self, obj):
        return _override(obj)


def test_reducer_override_identical(protocol):
    """A ``reducer_override`` subclass calling ``super()`` writes pickle's bytes."""
    obj = [
        _importable.Point(1, 2),
        External("e"),
        {"p": _importable.Point(3, 4)},
        [1, 2],
        len,
        _importable.Outer.Inner,
        _importable.module_function,
    ]
    expected = _pickle_with(PickleOverridePickler, obj, protocol)
    actual = _pickle_with(CloudOverridePickler, obj, protocol)
    assert_same_bytes(actual, expected)
    loaded = pickle.loads(actual)
    assert loaded[0] == 1 + 2j and loaded[1].overridden is True


def test_reducer_override_super_returns_not_implemented():
    """``Pickler.reducer_override`` returns NotImplemented for ordinary objects and
    importable functions/classes (which pickle by reference)."""
    pickler = cloudpickle.Pickler(io.BytesIO())
    for obj in [
        1,
        "s",
        [1],
        {"a": 1},
        (1,),
        None,
        _importable.Point(1, 2),
        len,
        int,
        _importable.module_function,
        _importable.Outer.Inner,
        _importable.Color.RED,
    ]:
        assert pickler.reducer_override(obj) is NotImplemented, obj


def test_reducer_override_sees_same_objects_as_pickle(protocol):
    """``reducer_override`` is called on the same objects, in the same order, as with
    pickle's C Pickler (atoms such as int/str/bytes/None/bool/float skip it)."""
    seen = {"cloud": [], "pickle": []}

    class CloudRecorder(cloudpickle.Pickler):
        def reducer_override(self, obj):
            seen["cloud"].append(repr(obj))
            return super().reducer_override(obj)

    class PickleRecorder(pickle.Pickler):
        def reducer_override(self, obj):
            seen["pickle"].append(repr(obj))
            return NotImplemented

    shared = [3]
    obj = [
        None,
        True,
        1,
        2.5,
        "s",
        b"b",
        (1, 2),
        {"k": shared},
        shared,
        frozenset({7}),
        bytearray(b"ba"),
        _importable.Point(1, 2),
        len,
        _importable.Outer,
    ]
    expected = _pickle_with(PickleRecorder, obj, protocol)
    actual = _pickle_with(CloudRecorder, obj, protocol)
    assert_same_bytes(actual, expected)
    assert seen["cloud"] == seen["pickle"]


def test_reducer_override_not_consulted_for_builtin_containers(protocol):
    """As in pickle's C Pickler, ``reducer_override`` is not called for exact
    builtin containers (list, dict, ...): an override for lists has no effect."""

    def override(obj):
        if type(obj) is list:
            return (tuple, (tuple(obj),))
        return NotImplemented

    class Cloud(cloudpickle.Pickler):
        def reducer_override(self, obj):
            result = override(obj)
            return super().reducer_override(obj) if result is NotImplemented else result

    class Pickle(pickle.Pickler):
        def reducer_override(self, obj):
            return override(obj)

    obj = {"a": [1, [2]], "b": ("t", [3])}
    expected = _pickle_with(Pickle, obj, protocol)
    actual = _pickle_with(Cloud, obj, protocol)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual) == obj


def test_reducer_override_assigned_on_instance(protocol):
    """A ``reducer_override`` assigned on the instance is honoured, as with pickle."""
    obj = [_importable.Point(5, 6)]

    class PlainPickleSubclass(pickle.Pickler):
        pass

    def run(cls):
        buf = io.BytesIO()
        pickler = cls(buf, protocol)
        pickler.reducer_override = _override
        pickler.dump(obj)
        return buf.getvalue()

    expected = run(PlainPickleSubclass)
    actual = run(cloudpickle.Pickler)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual) == [5 + 6j]


# ---------------------------------------------------------------------------
# dispatch tables
# ---------------------------------------------------------------------------


class Custom:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return type(other) is Custom and other.v == self.v


class Other:
    pass


def reduce_custom(obj):
    return (Custom, (obj.v * 10,))


def reduce_other(obj):
    return (Other, ())


def _instance_table():
    return {Custom: reduce_custom, Other: reduce_other}


class CloudTableAfterInit(cloudpickle.Pickler):
    def __init__(self, file, protocol=None):
        super().__init__(file, protocol)
        self.dispatch_table = _instance_table()


class CloudTableBeforeInit(cloudpickle.Pickler):
    def __init__(self, file, protocol=None):
        self.dispatch_table = _instance_table()
        super().__init__(file, protocol)


class PickleTable(pickle.Pickler):
    def __init__(self, file, protocol=None):
        super().__init__(file, protocol)
        self.dispatch_table = _instance_table()


def test_instance_dispatch_table_set_before_super_init(protocol):
    """A per-instance ``dispatch_table`` set before ``super().__init__`` is used."""
    obj = [Custom(1), Other(), Custom(1)]
    expected = _pickle_with(PickleTable, obj, protocol)
    actual = _pickle_with(CloudTableBeforeInit, obj, protocol)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual)[0] == Custom(10)


def test_instance_dispatch_table_set_after_super_init(protocol):
    """A per-instance ``dispatch_table`` set in ``__init__`` after ``super().__init__``
    is used, as with ``pickle.Pickler`` (the pure-Python cloudpickle 3.1.2 silently
    ignored it because of its class-level table)."""
    obj = [Custom(1), Other(), Custom(1)]
    expected = _pickle_with(PickleTable, obj, protocol)
    actual = _pickle_with(CloudTableAfterInit, obj, protocol)
    assert_same_bytes(actual, expected)


def test_instance_dispatch_table_does_not_leak():
    """A per-instance table does not change the class-level table or ``dumps``."""
    _pickle_with(CloudTableBeforeInit, Custom(1), 4)
    assert Custom not in cloudpickle.Pickler.dispatch_table
    assert pickle.loads(cloudpickle.dumps(Custom(1))) == Custom(1)


def test_class_level_dispatch_table_runtime_addition(protocol):
    """``cloudpickle.Pickler.dispatch_table[T] = f`` at run time affects ``dumps``,
    ``dump`` and ``Pickler`` (same bytes as pickle.Pickler with that table)."""
    obj = [Custom(2), Custom(2), Other()]
    expected = _pickle_with(PickleTable, obj, protocol)
    cloudpickle.Pickler.dispatch_table[Custom] = reduce_custom
    cloudpickle.Pickler.dispatch_table[Other] = reduce_other
    try:
        assert_same_bytes(cloudpickle.dumps(obj, protocol=protocol), expected)
        buf = io.BytesIO()
        cloudpickle.dump(obj, buf, protocol=protocol)
        assert_same_bytes(buf.getvalue(), expected)
        assert_same_bytes(_pickle_with(cloudpickle.Pickler, obj, protocol), expected)
    finally:
        del cloudpickle.Pickler.dispatch_table[Custom]
        del cloudpickle.Pickler.dispatch_table[Other]
    assert Custom not in copyreg.dispatch_table
    # Removed again: back to the default reduce.
    assert_same_bytes(
        cloudpickle.dumps(obj, protocol=protocol), pickle.dumps(obj, protocol=protocol)
    )


def test_copyreg_pickle_takes_effect(protocol):
    """``copyreg.pickle(T, f)`` registrations are honoured by cloudpickle."""
    obj = {"c": Custom(3)}
    copyreg.pickle(Custom, reduce_custom)
    try:
        expected = pickle.dumps(obj, protocol=protocol)
        actual = cloudpickle.dumps(obj, protocol=protocol)
        assert_same_bytes(actual, expected)
        assert pickle.loads(actual) == {"c": Custom(30)}
    finally:
        del copyreg.dispatch_table[Custom]
    assert_same_bytes(
        cloudpickle.dumps(obj, protocol=protocol), pickle.dumps(obj, protocol=protocol)
    )
    assert pickle.loads(cloudpickle.dumps(obj, protocol=protocol)) == {"c": Custom(3)}


def test_reducer_override_beats_dispatch_table(protocol):
    """``reducer_override`` is consulted before the dispatch table, as in pickle."""

    def override(obj):
        return (str, ("from override",)) if isinstance(obj, Custom) else NotImplemented

    class Cloud(cloudpickle.Pickler):
        def __init__(self, file, protocol=None):
            self.dispatch_table = _instance_table()
            super().__init__(file, protocol)

        def reducer_override(self, obj):
            result = override(obj)
            return super().reducer_override(obj) if result is NotImplemented else result

    class Pickle(PickleTable):
        def reducer_override(self, obj):
            return override(obj)

    obj = [Custom(1), Other()]
    expected = _pickle_with(Pickle, obj, protocol)
    actual = _pickle_with(Cloud, obj, protocol)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual)[0] == "from override"


@pytest.mark.parametrize("protocol_arg", PROTOCOLS)
def test_pickler_many_dumps_in_a_row(protocol_arg):
    """One Pickler dumping many different objects in a row (positional protocol)
    writes what one pickle.Pickler writes."""
    buf = io.BytesIO()
    pickler = cloudpickle.Pickler(buf, protocol_arg)
    ref = io.BytesIO()
    ref_pickler = pickle.Pickler(ref, protocol_arg)
    for obj in [1, "a", [1], {"b": 2}, (3,), _importable.Point(1, 2), None, len]:
        pickler.dump(obj)
        ref_pickler.dump(obj)
    assert_same_bytes(buf.getvalue(), ref.getvalue())


class _FailsToReduce:
    def __reduce__(self):
        raise ValueError("cannot reduce")


def test_failed_dump_then_reuse(protocol):
    """After a dump fails, the Pickler's file and memo look exactly as with pickle.Pickler
    (nothing of the failed pickle in the file; memo entries made before the failure kept)."""
    shared = [1, 2]
    text = "a string memoized before the failure"

    def run(cls):
        buf = io.BytesIO()
        pickler = cls(buf, protocol)
        with pytest.raises(ValueError, match="cannot reduce"):
            pickler.dump([shared, text, _FailsToReduce()])
        after_failure = buf.getvalue()
        pickler.dump([shared, text])
        return after_failure, buf.getvalue()

    expected_failure, expected = run(pickle.Pickler)
    actual_failure, actual = run(cloudpickle.Pickler)
    assert_same_bytes(actual_failure, expected_failure)
    assert_same_bytes(actual, expected)


def test_failed_dump_after_large_frames(protocol):
    """A dump failing after more than one frame was produced: the file content
    matches what pickle.Pickler leaves behind."""
    big = [f"item {i:08d}" for i in range(20_000)]

    def run(cls):
        buf = io.BytesIO()
        pickler = cls(buf, protocol)
        with pytest.raises(ValueError):
            pickler.dump([big, b"z" * 100_000, _FailsToReduce()])
        return buf.getvalue()

    assert_same_bytes(run(cloudpickle.Pickler), run(pickle.Pickler))


def test_closed_file(protocol):
    """Dumping into a closed file fails like pickle (ValueError)."""
    buf = io.BytesIO()
    buf.close()
    assert_same_outcome(
        lambda: cloudpickle.dump([1], buf, protocol=protocol),
        lambda: pickle.dump([1], buf, protocol=protocol),
    )


class CloudClassAttrTable(cloudpickle.Pickler):
    dispatch_table = {Custom: reduce_custom}


class PickleClassAttrTable(pickle.Pickler):
    dispatch_table = {Custom: reduce_custom}


def test_subclass_class_attribute_dispatch_table(protocol):
    """A subclass replacing ``dispatch_table`` with its own class attribute uses it."""
    obj = [Custom(4), Other()]
    expected = _pickle_with(PickleClassAttrTable, obj, protocol)
    actual = _pickle_with(CloudClassAttrTable, obj, protocol)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual)[0] == Custom(40)


class LoggingMapping(collections.abc.Mapping):
    """A read-only non-dict mapping used as a dispatch table."""

    def __init__(self, data):
        self.data = data
        self.lookups = []

    def __getitem__(self, key):
        self.lookups.append(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def test_non_dict_mapping_dispatch_table(protocol):
    """Any mapping works as a per-instance dispatch table, like with pickle."""

    def make(base):
        class P(base):
            def __init__(self, file, protocol=None):
                self.dispatch_table = LoggingMapping({Custom: reduce_custom})
                super().__init__(file, protocol)

        return P

    obj = [Custom(5), Other(), {"k": Custom(6)}]
    expected = _pickle_with(make(pickle.Pickler), obj, protocol)
    actual = _pickle_with(make(cloudpickle.Pickler), obj, protocol)
    assert_same_bytes(actual, expected)
    assert pickle.loads(actual)[0] == Custom(50)


def test_dispatch_table_lookup_error_propagates(protocol):
    """An exception (other than KeyError) raised by the dispatch table lookup propagates."""

    class Exploding(collections.abc.Mapping):
        def __getitem__(self, key):
            if key is Custom:
                raise ZeroDivisionError("lookup exploded")
            raise KeyError(key)

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

    def make(base):
        class P(base):
            def __init__(self, file, protocol=None):
                self.dispatch_table = Exploding()
                super().__init__(file, protocol)

        return P

    assert_same_outcome(
        lambda: _pickle_with(make(cloudpickle.Pickler), [Other(), Custom(1)], protocol),
        lambda: _pickle_with(make(pickle.Pickler), [Other(), Custom(1)], protocol),
    )
    with pytest.raises(ZeroDivisionError):
        _pickle_with(make(cloudpickle.Pickler), [Custom(1)], protocol)


# ---------------------------------------------------------------------------
# pickle.Pickler attributes: memo proxy and fast mode
# ---------------------------------------------------------------------------


def _memo_view(pickler):
    """``{memo index: id(object)}`` of a pickler's memo, via the public ``memo`` proxy."""
    return {index: id(obj) for index, obj in pickler.memo.copy().values()}


def test_memo_attribute_reflects_dumps(protocol):
    """``Pickler.memo`` shows what has been memoized, exactly like pickle.Pickler's."""
    shared = [1, 2]
    obj = [shared, {"a": shared}, "text", (shared,)]
    cloud = cloudpickle.Pickler(io.BytesIO(), protocol)
    ref = pickle.Pickler(io.BytesIO(), protocol)
    cloud.dump(obj)
    ref.dump(obj)
    assert _memo_view(cloud) == _memo_view(ref)
    assert len(_memo_view(cloud)) > 0
    cloud.clear_memo()
    assert _memo_view(cloud) == {}


def test_memo_can_be_transferred(protocol):
    """Assigning ``p2.memo = p1.memo`` makes p2 refer to what p1 already wrote."""
    shared = ["shared"]

    def run(cls):
        first = cls(io.BytesIO(), protocol)
        first.dump([shared])
        out = io.BytesIO()
        second = cls(out, protocol)
        second.memo = first.memo
        second.dump(shared)
        return out.getvalue()

    expected = run(pickle.Pickler)
    actual = run(cloudpickle.Pickler)
    assert_same_bytes(actual, expected)


def test_fast_mode_output(protocol):
    """``pickler.fast = True`` disables memoization, like pickle.Pickler."""
    shared = [1]

    def run(cls):
        buf = io.BytesIO()
        pickler = cls(buf, protocol)
        pickler.fast = True
        pickler.dump([shared, shared, "s", ("t", shared)])
        return buf.getvalue()

    expected = run(pickle.Pickler)
    assert_same_bytes(run(cloudpickle.Pickler), expected)


def test_fast_mode_rejects_cycles(protocol):
    """In fast mode a self-referential list cannot be pickled: ValueError like pickle."""
    lst = []
    lst.append(lst)

    def run(cls):
        pickler = cls(io.BytesIO(), protocol)
        pickler.fast = True
        pickler.dump(lst)

    assert_same_outcome(lambda: run(cloudpickle.Pickler), lambda: run(pickle.Pickler))


def test_persistent_id_top_level_and_self_pid(protocol):
    """A persistent id for the top-level object, and a pid that is the object itself
    (the pid is not passed to ``persistent_id`` again), as with pickle."""

    def make(base):
        class P(base):
            def persistent_id(self, obj):
                if isinstance(obj, str) and obj.startswith("self:"):
                    return obj  # the pid is the object itself
                if obj == ("top",):
                    return "top-level"
                return None

        return P

    for obj in [("top",), "self:abc", ["self:x", ("top",), "self:x"]]:
        assert_same_outcome(
            lambda: _pickle_with(make(cloudpickle.Pickler), obj, protocol),
            lambda: _pickle_with(make(pickle.Pickler), obj, protocol),
        )
