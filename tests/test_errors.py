"""Bad input: same exception types as pickle, informative messages, no crashes."""

import copyreg
import io
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import cloudpickle
import pytest
from _helpers import PROTOCOLS, assert_same_outcome

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _same_error_as_pickle(obj, protocol):
    """Both must raise, with the same exception type; return cloudpickle's exception."""
    with pytest.raises(Exception) as pickle_exc:
        pickle.dumps(obj, protocol=protocol)
    with pytest.raises(Exception) as cloud_exc:
        cloudpickle.dumps(obj, protocol=protocol)
    assert cloud_exc.type is pickle_exc.type, (
        f"pickle raised {pickle_exc.type.__name__}: {pickle_exc.value}\n"
        f"cloudpickle raised {cloud_exc.type.__name__}: {cloud_exc.value}"
    )
    assert str(cloud_exc.value), "the error message must not be empty"
    return cloud_exc.value


# ---------------------------------------------------------------------------
# Unpicklable objects and broken reduce implementations
# ---------------------------------------------------------------------------


# At protocols 0 and 1 pickle fails earlier, on the ``_thread.lock`` class itself
# (PicklingError), a path where the pure-Python cloudpickle falls back to pickling
# the class by value: not part of these tests.
PROTOCOLS_2_UP = [p for p in PROTOCOLS if p >= 2]


PYPY = sys.implementation.name == "pypy"


def _pypy_lock_fails_at_load(obj, protocol):
    """PyPy's locks do not refuse __reduce_ex__, and `_thread` does not hold
    their class `_thread.lock` (pickle fails on it): cloudpickle, like the
    reference there, pickles the class by value, its methods rebuilt from
    PyPy's builtin code. The class cannot be rebuilt: loading fails."""
    payload = cloudpickle.dumps(obj, protocol=protocol)
    with pytest.raises(TypeError, match="lock"):
        pickle.loads(payload)


@pytest.mark.parametrize("protocol", PROTOCOLS_2_UP)
def test_lock_raises_type_error(protocol):
    """A threading.Lock is not picklable: TypeError naming the type."""
    if PYPY:
        _pypy_lock_fails_at_load(threading.Lock(), protocol)
        return
    exc = _same_error_as_pickle(threading.Lock(), protocol)
    assert isinstance(exc, TypeError)
    assert "lock" in str(exc)


@pytest.mark.parametrize("protocol", PROTOCOLS_2_UP)
def test_lock_nested_in_container(protocol):
    """The error surfaces from deep inside a container too."""
    if PYPY:
        _pypy_lock_fails_at_load({"a": [1, (2, threading.Lock())]}, protocol)
        return
    exc = _same_error_as_pickle({"a": [1, (2, threading.Lock())]}, protocol)
    assert "lock" in str(exc)


class ReducesTo:
    """An object whose ``__reduce__`` returns whatever it was given."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return self.value


# Factories: iterators inside reduce values are consumed by each pickling attempt.
BAD_REDUCE_VALUES = {
    "int": lambda: 42,
    "none": lambda: None,
    "list": lambda: [ReducesTo, ()],
    "empty-tuple": lambda: (),
    "1-tuple": lambda: (ReducesTo,),
    "7-tuple": lambda: (ReducesTo, (1,), None, None, None, None, None),
    "non-callable-first": lambda: (42, ()),
    "string-first": lambda: ("ReducesTo", ()),
    "args-not-tuple": lambda: (ReducesTo, [1]),
    "args-none": lambda: (ReducesTo, None),
    "listitems-not-iterator": lambda: (ReducesTo, (1,), None, [1, 2]),
    "dictitems-not-iterator": lambda: (ReducesTo, (1,), None, None, {"a": 1}),
    "dictitems-not-pairs": lambda: (ReducesTo, (1,), None, None, iter([1, 2])),
    "dictitems-triples": lambda: (ReducesTo, (1,), None, None, iter([(1, 2, 3)])),
    "dictitems-lists": lambda: (ReducesTo, (1,), None, None, iter([[1, 2]])),
    "state-setter-not-callable": lambda: (ReducesTo, (1,), {"a": 1}, None, None, 42),
    "unknown-global-name": lambda: "no_such_global_in_this_module",
    "global-naming-another-object": lambda: "ReducesTo",
    "dotted-unknown-name": lambda: "ReducesTo.nothing_here",
}


@pytest.mark.parametrize("name", sorted(BAD_REDUCE_VALUES))
def test_bad_reduce_values(name, protocol):
    """Malformed ``__reduce__`` results raise pickle's exception type (mostly PicklingError)."""
    with pytest.raises(Exception) as pickle_exc:
        pickle.dumps(ReducesTo(BAD_REDUCE_VALUES[name]()), protocol=protocol)
    with pytest.raises(Exception) as cloud_exc:
        cloudpickle.dumps(ReducesTo(BAD_REDUCE_VALUES[name]()), protocol=protocol)
    assert cloud_exc.type is pickle_exc.type, (
        f"pickle raised {pickle_exc.type.__name__}: {pickle_exc.value}\n"
        f"cloudpickle raised {cloud_exc.type.__name__}: {cloud_exc.value}"
    )


@pytest.mark.parametrize(
    "name", ["int", "1-tuple", "7-tuple", "non-callable-first", "args-not-tuple"]
)
def test_bad_reduce_is_pickling_error(name, protocol):
    """The classic malformed reduce values are ``pickle.PicklingError``."""
    exc = _same_error_as_pickle(ReducesTo(BAD_REDUCE_VALUES[name]()), protocol)
    assert isinstance(exc, pickle.PicklingError)


class NewObjWrongClass:
    def __reduce__(self):
        return (copyreg.__newobj__, (int,))


class NewObjNoArgs:
    def __reduce__(self):
        return (copyreg.__newobj__, ())


class NewObjNotAClass:
    def __reduce__(self):
        return (copyreg.__newobj__, ("not a class",))


class NewObjExBadArgs:
    def __reduce__(self):
        return (copyreg.__newobj_ex__, (NewObjExBadArgs, [], {}))


@pytest.mark.parametrize(
    "cls",
    [NewObjWrongClass, NewObjNoArgs, NewObjNotAClass, NewObjExBadArgs],
    ids=lambda c: c.__name__,
)
def test_bad_newobj_reduce(cls, protocol):
    """Inconsistent ``copyreg.__newobj__``/``__newobj_ex__`` arguments fail like pickle
    (or succeed identically at protocols where pickle does not check them)."""
    obj = cls()
    assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )


class CustomError(Exception):
    pass


class RaisesInReduce:
    def __reduce__(self):
        raise CustomError("raised by __reduce__")


class RaisesInReduceEx:
    def __reduce_ex__(self, protocol):
        raise KeyError("raised by __reduce_ex__")


class RaisesInGetstate:
    def __getstate__(self):
        raise ZeroDivisionError("raised by __getstate__")


class RaisesInGetnewargs:
    def __getnewargs__(self):
        raise RuntimeError("raised by __getnewargs__")


@pytest.mark.parametrize(
    "obj, exc_type, message",
    [
        (RaisesInReduce(), CustomError, "raised by __reduce__"),
        (RaisesInReduceEx(), KeyError, "raised by __reduce_ex__"),
        (RaisesInGetstate(), ZeroDivisionError, "raised by __getstate__"),
        ([1, {"deep": (RaisesInReduce(),)}], CustomError, "raised by __reduce__"),
    ],
    ids=["reduce", "reduce_ex", "getstate", "nested"],
)
def test_user_exceptions_propagate_unchanged(obj, exc_type, message, protocol):
    """Exceptions raised by user code while reducing propagate with their own type."""
    with pytest.raises(exc_type, match=message):
        cloudpickle.dumps(obj, protocol=protocol)
    with pytest.raises(exc_type, match=message):
        cloudpickle.Pickler(io.BytesIO(), protocol).dump(obj)


def test_getnewargs_exception_like_pickle(protocol):
    """An exception from ``__getnewargs__``: same outcome as pickle at every protocol."""
    obj = RaisesInGetnewargs()
    assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )


def test_reducer_override_exception_propagates(protocol):
    """An exception raised by a ``reducer_override`` override propagates."""

    class P(cloudpickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, RaisesInReduce):
                raise CustomError("from reducer_override")
            return super().reducer_override(obj)

    with pytest.raises(CustomError, match="from reducer_override"):
        P(io.BytesIO(), protocol).dump([RaisesInReduce()])


def test_reducer_override_bad_return_value(protocol):
    """A ``reducer_override`` returning garbage fails like pickle's."""

    def make(base):
        class P(base):
            def reducer_override(self, obj):
                if isinstance(obj, RaisesInReduce):
                    return 12345
                return NotImplemented

        return P

    def run(cls):
        buf = io.BytesIO()
        cls(buf, protocol).dump([RaisesInReduce()])
        return buf.getvalue()

    assert_same_outcome(lambda: run(make(cloudpickle.Pickler)), lambda: run(make(pickle.Pickler)))


def test_persistent_id_exception_propagates(protocol):
    """An exception raised by ``persistent_id`` propagates."""

    class P(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if obj == "boom":
                raise CustomError("from persistent_id")
            return None

    with pytest.raises(CustomError, match="from persistent_id"):
        P(io.BytesIO(), protocol).dump(["fine", "boom"])


def test_dispatch_table_reducer_exception_propagates(protocol):
    """An exception raised by a dispatch-table reducer propagates."""

    class Target:
        pass

    def bad_reducer(obj):
        raise CustomError("from dispatch table")

    cloudpickle.Pickler.dispatch_table[Target] = bad_reducer
    try:
        with pytest.raises(CustomError, match="from dispatch table"):
            cloudpickle.dumps(Target(), protocol=protocol)
    finally:
        del cloudpickle.Pickler.dispatch_table[Target]


class Unimportable:
    pass


Unimportable.__qualname__ = "NoSuchName"
Unimportable.__name__ = "NoSuchName"


def test_class_not_found_by_reference():
    """A class that cannot be found under its qualified name: pickle raises
    PicklingError; cloudpickle either raises PicklingError too or (pickling it by
    value, which is out of scope here) returns bytes, never any other error."""
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(Unimportable, protocol=4)
    try:
        data = cloudpickle.dumps(Unimportable, protocol=4)
    except pickle.PicklingError:
        return
    assert isinstance(data, bytes)


# ---------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [6, 7, 100], ids=repr)
def test_protocol_too_high(bad):
    """A protocol above the highest raises ValueError (dumps, dump, Pickler)."""
    with pytest.raises(ValueError):
        pickle.dumps(1, protocol=bad)
    with pytest.raises(ValueError):
        cloudpickle.dumps(1, protocol=bad)
    with pytest.raises(ValueError):
        cloudpickle.dump(1, io.BytesIO(), protocol=bad)
    with pytest.raises(ValueError):
        cloudpickle.Pickler(io.BytesIO(), protocol=bad)


def test_protocol_overflowing():
    """A protocol too big for a C long fails with pickle's exception type."""
    assert_same_outcome(
        lambda: cloudpickle.dumps(1, protocol=2**70), lambda: pickle.dumps(1, protocol=2**70)
    )
    assert_same_outcome(
        lambda: cloudpickle.dumps(1, protocol=-(2**70)), lambda: pickle.dumps(1, protocol=-(2**70))
    )


@pytest.mark.parametrize("bad", ["x", "4", [4], b"4", None.__class__], ids=repr)
def test_protocol_wrong_type(bad):
    """A non-integer protocol raises TypeError like pickle."""
    with pytest.raises(TypeError):
        pickle.dumps(1, protocol=bad)
    with pytest.raises(TypeError):
        cloudpickle.dumps(1, protocol=bad)
    with pytest.raises(TypeError):
        cloudpickle.dump(1, io.BytesIO(), protocol=bad)
    with pytest.raises(TypeError):
        cloudpickle.Pickler(io.BytesIO(), protocol=bad)


def test_protocol_float():
    """A float protocol: same outcome as pickle (deprecated then rejected across versions)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_same_outcome(
            lambda: cloudpickle.dumps([1], protocol=4.0), lambda: pickle.dumps([1], protocol=4.0)
        )


def test_protocol_bool_and_int_subclass():
    """``True``/``False`` are integers (protocols 1 and 0), as for pickle."""
    for proto in (True, False):
        assert cloudpickle.dumps([1], protocol=proto) == pickle.dumps([1], protocol=proto)


@pytest.mark.parametrize("bad_file", [object(), None, 42, "path.pkl", b"bytes"], ids=repr)
def test_file_without_write(bad_file):
    """A file object without ``write`` raises TypeError (dump and Pickler)."""
    with pytest.raises(TypeError):
        pickle.dump(1, bad_file)
    with pytest.raises(TypeError):
        cloudpickle.dump(1, bad_file)
    with pytest.raises(TypeError):
        cloudpickle.Pickler(bad_file)


def test_file_write_exception_propagates(protocol):
    """An exception raised by ``file.write`` propagates unchanged."""

    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        cloudpickle.dump([1, 2, 3], FullDisk(), protocol=protocol)
    with pytest.raises(OSError, match="No space left"):
        cloudpickle.Pickler(FullDisk(), protocol).dump("x")


def test_file_opened_for_reading(tmp_path):
    """Writing into a file opened read-only raises the same error as pickle."""
    path = tmp_path / "ro.pkl"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        with pytest.raises(io.UnsupportedOperation):
            pickle.dump([1], f)
        with pytest.raises(io.UnsupportedOperation):
            cloudpickle.dump([1], f)


def test_text_file_rejected(tmp_path):
    """Writing into a text-mode file fails with TypeError, like pickle."""
    with open(tmp_path / "text.pkl", "w") as f:
        with pytest.raises(TypeError):
            pickle.dump([1], f)
        with pytest.raises(TypeError):
            cloudpickle.dump([1], f)


# ---------------------------------------------------------------------------
# Mutation during pickling (must not crash the process)
# ---------------------------------------------------------------------------


class ClearsContainer:
    """Empties the container it lives in while being pickled."""

    def __init__(self, container):
        self.container = container

    def __reduce__(self):
        self.container.clear()
        return (int, (0,))


class GrowsContainer:
    """Adds items to the container it lives in while being pickled."""

    def __init__(self, container, key=None):
        self.container = container
        self.key = key

    def __reduce__(self):
        if isinstance(self.container, list):
            if len(self.container) < 5000:
                self.container.extend(range(10))
        elif isinstance(self.container, dict):
            self.container[object()] = 1
        else:
            self.container.add(object())
        return (int, (1,))


def _mutating_cases():
    cases = {}
    lst = [1, 2]
    lst.append(ClearsContainer(lst))
    lst.extend([3, 4, 5])
    cases["list-cleared"] = lst

    big = list(range(1500))
    big.insert(3, ClearsContainer(big))
    cases["list-cleared-batched"] = big

    grow = [0]
    grow.append(GrowsContainer(grow))
    cases["list-grown"] = grow

    d = {"a": 1}
    d["b"] = ClearsContainer(d)
    d["c"] = 3
    cases["dict-cleared"] = d

    d2 = {"a": 1}
    d2["b"] = GrowsContainer(d2)
    cases["dict-grown"] = d2

    return cases


MUTATING = _mutating_cases()


@pytest.mark.parametrize("name", sorted(MUTATING))
def test_container_mutated_during_pickling(name, protocol):
    """A container mutated while being pickled: pickle's outcome (bytes or exception
    type), never a crash or a Rust panic."""
    # Build fresh objects for each side: the mutation is destructive.
    fresh_pickle = _mutating_cases()[name]
    fresh_cloud = _mutating_cases()[name]
    assert_same_outcome(
        lambda: cloudpickle.dumps(fresh_cloud, protocol=protocol),
        lambda: pickle.dumps(fresh_pickle, protocol=protocol),
    )


# ---------------------------------------------------------------------------
# Excessively deep recursion
# ---------------------------------------------------------------------------

DEPTH = 1_000_000
RECURSION_MESSAGE = "Could not pickle object as excessively deep recursion required."


def _deep(kind, depth=DEPTH):
    obj = None
    if kind == "list":
        obj = []
        for _ in range(depth):
            obj = [obj]
    elif kind == "dict":
        obj = {}
        for _ in range(depth):
            obj = {"k": obj}
    elif kind == "tuple":
        obj = ()
        for _ in range(depth):
            obj = (obj,)
    elif kind == "mixed":
        obj = "leaf"
        for i in range(depth):
            obj = [obj] if i % 3 == 0 else ({"k": obj} if i % 3 == 1 else (obj,))
    return obj


_SUBPROCESS_DEEP = textwrap.dedent(
    """
    import pickle, sys
    sys.path.insert(0, {tests_dir!r})
    import cloudpickle
    from test_errors import _deep
    obj = _deep({kind!r})
    try:
        cloudpickle.dumps(obj, protocol={protocol})
    except pickle.PicklingError as exc:
        print("PicklingError:", exc)
    except BaseException as exc:
        print("OTHER:", type(exc).__name__, exc)
    else:
        print("NO ERROR")
    print("after:", cloudpickle.dumps([1, 2]) == pickle.dumps([1, 2], protocol=pickle.HIGHEST_PROTOCOL))
    """
)


def _probe_in_subprocess(kind, protocol):
    """Run the deep-recursion scenario in a child first: a crash there (stack
    overflow, abort) must not take the whole test session down."""
    code = _SUBPROCESS_DEEP.format(tests_dir=TESTS_DIR, kind=kind, protocol=protocol)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"the child process crashed (return code {proc.returncode}) pickling a "
        f"{DEPTH:,}-deep {kind}:\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    )
    return proc.stdout


@pytest.mark.parametrize(
    "kind, protocol",
    [("list", 0), ("list", 5), ("dict", 0), ("dict", 5), ("tuple", 1), ("tuple", 5), ("mixed", 4)],
)
def test_excessively_deep_recursion(kind, protocol):
    """A container nested 1,000,000 deep raises PicklingError with cloudpickle's exact
    message, and the process keeps working afterwards."""
    out = _probe_in_subprocess(kind, protocol)
    assert f"PicklingError: {RECURSION_MESSAGE}" in out, out
    assert "after: True" in out, out

    # Same in this process (safe now that the child survived).
    obj = _deep(kind)

    def again():
        # PyPy's cpyext leaves a tuple it failed to convert for C (nested too
        # deep: the RecursionError at the call) half-converted, and the next
        # C call that reads it crashes, whatever the extension (a PyPy bug,
        # seen with a minimal C function): a new structure for each call.
        return _deep(kind) if sys.implementation.name == "pypy" else obj

    with pytest.raises(pickle.PicklingError) as info:
        cloudpickle.dumps(obj, protocol=protocol)
    assert str(info.value) == RECURSION_MESSAGE
    with pytest.raises(pickle.PicklingError, match="excessively deep recursion"):
        cloudpickle.dump(again(), io.BytesIO(), protocol=protocol)
    with pytest.raises(pickle.PicklingError, match="excessively deep recursion"):
        cloudpickle.Pickler(io.BytesIO(), protocol).dump(again())
    # The process still works and pickles correctly.
    for p in PROTOCOLS:
        assert cloudpickle.dumps({"ok": [1, (2,)]}, protocol=p) == pickle.dumps(
            {"ok": [1, (2,)]}, protocol=p
        )


class Node:
    """A linked-list node pickled through the default reduce protocol."""

    def __init__(self, next_node=None):
        self.next = next_node


def _deep_nodes(depth):
    node = None
    for _ in range(depth):
        node = Node(node)
    return node


_SUBPROCESS_NODES = textwrap.dedent(
    """
    import pickle, sys
    sys.path.insert(0, {tests_dir!r})
    import cloudpickle
    from test_errors import _deep_nodes
    obj = _deep_nodes({depth})
    try:
        cloudpickle.dumps(obj, protocol={protocol})
    except pickle.PicklingError as exc:
        print("PicklingError:", exc)
    except RecursionError as exc:
        print("RecursionError:", exc)
    except BaseException as exc:
        print("OTHER:", type(exc).__name__, exc)
    else:
        print("NO ERROR")
    print("after:", cloudpickle.dumps([1, 2]) == pickle.dumps([1, 2], protocol=pickle.HIGHEST_PROTOCOL))
    """
)


@pytest.mark.parametrize("protocol", [0, 5])
def test_deep_recursion_through_reduce(protocol):
    """A chain of 100,000 objects linked through ``__dict__`` state: a clean
    PicklingError (no stack overflow), in a child process so a crash is contained."""
    code = _SUBPROCESS_NODES.format(tests_dir=TESTS_DIR, depth=100_000, protocol=protocol)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"child crashed with return code {proc.returncode}\nstderr: {proc.stderr[-2000:]}"
    )
    assert f"PicklingError: {RECURSION_MESSAGE}" in proc.stdout, proc.stdout
    assert "after: True" in proc.stdout, proc.stdout


def test_moderate_object_chain_pickles(protocol):
    """A chain of 100 objects pickles identically (no spurious depth limit)."""
    obj = _deep_nodes(100)
    assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )


def test_errors_leave_pickler_usable(protocol):
    """After a failed dump, a new dump with the same function works and is correct."""
    with pytest.raises(pickle.PicklingError):
        cloudpickle.dumps(ReducesTo(42), protocol=protocol)
    with pytest.raises(CustomError):
        cloudpickle.dumps(RaisesInReduce(), protocol=protocol)
    assert cloudpickle.dumps([1, "a"], protocol=protocol) == pickle.dumps(
        [1, "a"], protocol=protocol
    )


# ---------------------------------------------------------------------------
# Containers that lie about themselves (Python-level overrides must not confuse
# the engine into out-of-bounds accesses)
# ---------------------------------------------------------------------------


class LyingTuple(tuple):
    """A tuple subclass whose Python-level protocol disagrees with its real content."""

    def __len__(self):
        return 100

    def __iter__(self):
        return iter(range(100))

    def __getitem__(self, index):
        raise IndexError("lying tuple")


class LyingDict(dict):
    """A dict subclass whose Python-level views disagree with its real content."""

    def __len__(self):
        return 0

    def items(self):
        return iter([("fake", 1)] * 3)

    def __iter__(self):
        return iter(["fake"])


class LyingReduce:
    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        if self.shape == "reduce-value":
            return LyingTuple((LyingReduce, ("args",)))
        if self.shape == "args":
            return (Plain2, LyingTuple((1, 2)))
        if self.shape == "state":
            return (Plain2, (), LyingDict({"a": 1}))
        if self.shape == "slot-state":
            return (Plain2, (), LyingTuple(({"a": 1}, {"b": 2})))
        if self.shape == "dictitems-pairs":
            return (Plain2, (), None, None, iter([LyingTuple(("k", "v"))]))
        raise AssertionError(self.shape)


class Plain2:
    def __init__(self, *args):
        self.args = args

    def __setitem__(self, key, value):
        setattr(self, f"item_{key}", value)


@pytest.mark.parametrize(
    "shape", ["reduce-value", "args", "state", "slot-state", "dictitems-pairs"]
)
def test_lying_containers_in_reduce_values(shape, protocol):
    """Tuple/dict subclasses with misleading ``__len__``/``__iter__``/``items`` inside
    reduce values: pickle's outcome (it reads the real content), never a crash."""
    obj = LyingReduce(shape)
    assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )


def test_lying_containers_as_data(protocol):
    """Lying tuple/dict subclasses pickled as data: same outcome as pickle."""
    for obj in (
        LyingDict({"a": 1}),
        [LyingDict({"b": 2})],
        LyingTuple((1, 2)),
        [LyingTuple(("x",))],
    ):
        assert_same_outcome(
            lambda: cloudpickle.dumps(obj, protocol=protocol),
            lambda: pickle.dumps(obj, protocol=protocol),
        )
