"""The base globals of functions by value in one-shot dumps.

A function by value carries a small dict of its module namespace's
``__package__``, ``__name__``, ``__path__`` and ``__file__`` (its base
globals), shared by the functions of one dump that have the same namespace.
In a one-shot ``dumps`` the engine keeps the first namespace's dict out of
``globals_ref``, and reuses the dict the previous dump on the thread made
when a new one would have the very same entries
(src/reduce/function_reduction.rs, ``reuse_base_globals``). Each test
changes a namespace between dumps or during one and compares the payload
with the engine's general path (fast paths off), which builds every dict
afresh, and checks that the loaded functions see the right globals.
"""

import gc
import pickle
import sys

import cloudpickle
import pytest
from _helpers import general_path as _general

PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)


def _check(dump):
    """Two fast dumps (the second may reuse what the first made) against
    the general path; returns the payload."""
    first = dump()
    second = dump()
    general = _general(dump)
    assert first == general
    assert second == general
    return second


def _namespace(name="mod_a", file="/tmp/a.py", package="", path=None, extra=""):
    ns = {"__name__": name, "__file__": file, "__package__": package}
    if path is not None:
        ns["__path__"] = path
    exec(
        "def f(x):\n    return (x, __name__, K)\n"
        "def g(x):\n    return (x, __name__)\n"
        "K = 1\n" + extra,
        ns,
    )
    return ns


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_namespace_values_changed_between_dumps(protocol):
    ns = _namespace()
    f = ns["f"]
    _check(lambda: cloudpickle.dumps(f, protocol))
    for key, value in [
        ("__name__", "mod_b"),
        ("__file__", "/tmp/b.py"),
        ("__package__", "pkg"),
        ("__path__", ["/tmp/pkg"]),
    ]:
        ns[key] = value
        payload = _check(lambda: cloudpickle.dumps(f, protocol))
        assert pickle.loads(payload)(1)[1] == ns["__name__"]
    del ns["__file__"]
    _check(lambda: cloudpickle.dumps(f, protocol))
    # An equal but distinct value: the payload is the same either way.
    ns["__name__"] = "".join(["mod", "_c"])
    _check(lambda: cloudpickle.dumps(f, protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_namespace_then_full(protocol):
    ns = {}
    exec("def f(x):\n    return x\n", ns)
    f = ns["f"]
    _check(lambda: cloudpickle.dumps(f, protocol))
    ns["__name__"] = "late"
    _check(lambda: cloudpickle.dumps(f, protocol))
    other = _namespace()["f"]
    _check(lambda: cloudpickle.dumps(other, protocol))
    _check(lambda: cloudpickle.dumps(f, protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_namespaces_with_equal_values_in_one_dump(protocol):
    # Two namespaces whose base globals would be equal: each gets its own
    # dict, as with the general path; the same namespace shares one.
    a = _namespace()
    b = _namespace()
    objs = [a["f"], b["f"], a["g"], b["g"], a["f"]]
    payload = _check(lambda: cloudpickle.dumps(objs, protocol))
    loaded = pickle.loads(payload)
    assert loaded[0].__globals__ is loaded[2].__globals__
    assert loaded[0].__globals__ is not loaded[1].__globals__
    assert loaded[1].__globals__ is loaded[3].__globals__


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_three_namespaces_and_a_function_with_attributes(protocol):
    # The second namespace makes `globals_ref` a dict holding the first's
    # entry; a function with a __dict__ takes the general writer, which
    # reads `globals_ref` too.
    a, b, c = _namespace("a"), _namespace("b"), _namespace("c")
    a["g"].tag = "attr"
    objs = [a["f"], b["f"], a["g"], c["g"], b["g"], a["f"]]
    payload = _check(lambda: cloudpickle.dumps(objs, protocol))
    loaded = pickle.loads(payload)
    assert loaded[0].__globals__ is loaded[2].__globals__
    assert loaded[2].tag == "attr"
    assert [fn(0)[1] for fn in loaded[:2]] == ["a", "b"]


@pytest.mark.skipif(
    sys.implementation.name == "pypy",
    reason="on PyPy the general path writes the namespace's new __name__ a second time "
    "where the fast path memoizes it once (the same str object); the loaded functions "
    "are the same",
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_namespace_changed_mid_dump(protocol):
    # A reducer run between two functions of the same namespace changes it:
    # the second function shares the dict made for the first (as with the
    # general path), and the next dump sees the change.
    ns = _namespace()

    class Changer:
        def __reduce__(self):
            ns["__name__"] = ns["__name__"] + "x"
            return (str, ("changed",))

    def dump():
        ns["__name__"] = "mod_a"
        return cloudpickle.dumps([ns["f"], Changer(), ns["g"]], protocol)

    _check(dump)
    ns["__name__"] = "mod_a"
    f = ns["f"]
    _check(lambda: cloudpickle.dumps(f, protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_namespace_freed_between_dumps(protocol):
    for i in range(5):
        ns = _namespace(name=f"tmp{i % 2}")
        _check(lambda f=ns["f"]: cloudpickle.dumps(f, protocol))
        del ns
        gc.collect()


def test_kept_dict_taken_by_gc_and_changed():
    # Even if the dict kept between dumps were reached (gc.get_objects)
    # and changed, the next dump would not reuse it: it is compared with
    # what a new dict would hold.
    ns = _namespace(path=["/tmp/pkg"])
    f = ns["f"]
    _check(lambda: cloudpickle.dumps(f))
    for obj in gc.get_objects():
        if type(obj) is dict and obj.get("__path__") is ns["__path__"] and obj is not ns:
            obj["__name__"] = "tampered"
            obj["extra"] = 1
    payload = _check(lambda: cloudpickle.dumps(f))
    assert b"tampered" not in payload
    for obj in gc.get_objects():
        if type(obj) is dict and obj.get("__path__") is ns["__path__"] and obj is not ns:
            del obj["__file__"]
    _check(lambda: cloudpickle.dumps(f))


def test_pickler_keeps_its_globals_ref():
    # A Pickler's globals_ref persists across its dumps, untouched by the
    # one-shot reuse.
    import io

    ns = _namespace()
    buf = io.BytesIO()
    p = cloudpickle.Pickler(buf)
    p.dump(ns["f"])
    p.dump(ns["g"])
    fresh = io.BytesIO()
    q = cloudpickle.Pickler(fresh)
    _general(lambda: (q.dump(ns["f"]), q.dump(ns["g"])))
    assert buf.getvalue() == fresh.getvalue()


class _HostileKey(str):
    """A namespace key equal in hash to "__name__" whose __eq__ changes the
    namespace while the engine looks up the base globals."""

    def __hash__(self):
        return hash("__name__")

    def __eq__(self, other):
        if self.ns is not None:
            self.ns["__file__"] = self.ns["__file__"] + "x"
        return str.__eq__(self, other)


@pytest.mark.skipif(
    sys.implementation.name == "pypy",
    reason="on PyPy the fast and general paths look the namespace up a different number "
    "of times, so the key's __eq__ leaves another of its intermediate values in the payload",
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_namespace_key_eq_changes_namespace(protocol):
    # Python code runs inside the lookups of the base globals (the hostile
    # key is met first on "__name__"'s probe sequence): the fast path, and
    # the dict kept from the previous dump, must give what the general
    # path gives, and each payload the values read while it was made.
    key = _HostileKey("hostile")
    key.ns = None
    ns = {key: 1, "__name__": "mod_a", "__file__": "/tmp/a.py", "__package__": ""}
    exec("def f(x):\n    return (x, __name__)\n", ns)
    key.ns = ns
    f = ns["f"]
    payloads = []
    for dump in (lambda: cloudpickle.dumps(f, protocol),) * 2 + (
        lambda: _general(lambda: cloudpickle.dumps(f, protocol)),
    ):
        ns["__file__"] = "/tmp/a.py"
        payloads.append(dump())
        assert ns["__file__"] != "/tmp/a.py"  # the key's __eq__ did run
    key.ns = None
    first, second, general = payloads
    assert first == general
    assert second == general
    assert pickle.loads(second).__globals__["__file__"].startswith("/tmp/a.py")
