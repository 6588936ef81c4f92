"""When pickling fails, the exception says how the failing object was
reached from the object passed to dumps (a note on 3.11+, the message on
older Pythons), and keeps its type."""

import copyreg
import functools
import gc
import io
import pickle
import sys
import weakref

import cloudpickle
import pytest
from _helpers import unpicklable_lock


def path_of(exc):
    """The path text attached to ``exc``."""
    if sys.version_info >= (3, 11):
        notes = getattr(exc, "__notes__", [])
        assert len(notes) == 1, notes
        return notes[0]
    return str(exc)


def failure(obj, **kwargs):
    with pytest.raises(Exception) as info:
        cloudpickle.dumps(obj, **kwargs)
    return info.value, path_of(info.value)


def lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("->")]


class Client:
    def __init__(self):
        self._lock = unpicklable_lock()
        self.name = "client"


def test_closure_attribute_in_a_list():
    client = Client()

    def process(x):
        return client, x

    exc, text = failure([1, 2, 3, process])
    assert isinstance(exc, TypeError) and "_thread.lock" in str(exc).splitlines()[0]
    assert "list of 4 items (the object being pickled)" in text
    assert lines(text) == [
        "-> item 3: function 'test_closure_attribute_in_a_list.<locals>.process'",
        f"-> closure variable 'client': {__name__}.Client object",
        "-> attribute '_lock': _thread.lock object",
    ]


LOCK = unpicklable_lock()


def uses_global():
    return LOCK


def test_function_global():
    # Make the function dynamic so that it goes by value.
    func = type(uses_global)(uses_global.__code__, {"LOCK": LOCK}, "uses_global")
    _, text = failure({"task": func})
    assert lines(text) == [
        "-> value of key 'task': function 'uses_global'",
        "-> global variable 'LOCK': _thread.lock object",
    ]


def test_defaults_and_keyword_defaults():
    def f(a, b=unpicklable_lock()):  # noqa: B008
        return a

    def g(a, *, flag=unpicklable_lock()):  # noqa: B008
        return a

    assert lines(failure(f)[1]) == ["-> default of parameter 'b': _thread.lock object"]
    assert lines(failure(g)[1]) == [
        "-> default of keyword-only parameter 'flag': _thread.lock object"
    ]


def test_function_attribute_and_annotation():
    def f():
        pass

    f.lock = unpicklable_lock()
    assert lines(failure(f)[1]) == ["-> attribute 'lock': _thread.lock object"]

    def g(x: "int"):
        pass

    g.__annotations__["x"] = unpicklable_lock()
    assert lines(failure(g)[1]) == ["-> annotation of 'x': _thread.lock object"]


def test_class_attribute():
    class Holder:
        lock = unpicklable_lock()

    _, text = failure((Holder,))
    assert lines(text) == [
        "-> item 0: class 'test_class_attribute.<locals>.Holder'",
        "-> class attribute 'lock': _thread.lock object",
    ]


def test_dict_key_and_set_item():
    class Key:
        def __reduce__(self):
            raise ValueError("no keys like this")

    exc, text = failure({Key(): 1})
    assert isinstance(exc, ValueError)
    assert lines(text)[0].startswith("-> key <")
    exc, text = failure([{Key()}])
    assert lines(text)[:2] == ["-> item 0: set of 1 item", "-> an item: " + _obj(Key)]


def _obj(cls):
    return f"{cls.__module__}.{cls.__qualname__} object"


def test_getstate_state_and_slots():
    class WithState:
        def __getstate__(self):
            return {"inner": [unpicklable_lock()]}

    _, text = failure(WithState())
    assert lines(text) == [
        "-> attribute 'inner': list of 1 item",
        "-> item 0: _thread.lock object",
    ]

    class Slotted:
        __slots__ = ("a", "b")

        def __init__(self):
            self.a = 1
            self.b = unpicklable_lock()

    _, text = failure(Slotted(), protocol=2)
    assert lines(text) == ["-> attribute 'b': _thread.lock object"]


def test_reducer_arguments():
    class Reduced:
        def __reduce__(self):
            return (Reduced, (1, unpicklable_lock()))

    _, text = failure(Reduced())
    assert lines(text) == ["-> argument 1 of its reduction: _thread.lock object"]

    partial = functools.partial(print, unpicklable_lock())
    _, text = failure(partial)
    assert "_thread.lock object" in lines(text)[-1]


def test_nested_containers_and_tuples():
    data = {"a": [(1, 2), (3, {"deep": [unpicklable_lock()]})]}
    _, text = failure(data)
    assert lines(text) == [
        "-> value of key 'a': list of 2 items",
        "-> item 1: tuple of 2 items",
        "-> item 1: dict of 1 item",
        "-> value of key 'deep': list of 1 item",
        "-> item 0: _thread.lock object",
    ]


def test_pickling_error_type_is_kept():
    def f():
        return 1

    class Bad:
        def __reduce__(self):
            return (f, ())  # a 2-tuple is fine; break the next one

        def __reduce_ex__(self, protocol):
            return "not_a_global_name_anywhere"

    exc, text = failure([Bad()])
    assert isinstance(exc, pickle.PicklingError)
    assert "-> item 0:" in text


def test_root_failure_has_no_path():
    with pytest.raises(TypeError) as info:
        cloudpickle.dumps(unpicklable_lock())
    assert not getattr(info.value, "__notes__", None)
    assert "Path to the object" not in str(info.value)


def test_pickler_subclass_and_dump_to_file():
    class Custom(cloudpickle.Pickler):
        def reducer_override(self, obj):
            return super().reducer_override(obj)

    buf = io.BytesIO()
    with pytest.raises(TypeError) as info:
        Custom(buf).dump({"x": [unpicklable_lock()]})
    assert lines(path_of(info.value)) == [
        "-> value of key 'x': list of 1 item",
        "-> item 0: _thread.lock object",
    ]
    with pytest.raises(TypeError) as info:
        cloudpickle.dump({"y": unpicklable_lock()}, io.BytesIO())
    assert lines(path_of(info.value)) == ["-> value of key 'y': _thread.lock object"]


def test_nested_dumps_in_a_reducer_gives_one_path():
    class Wrapper:
        def __init__(self, payload):
            self.payload = payload

        def __reduce__(self):
            return (bytes, (cloudpickle.dumps(self.payload),))

    exc, text = failure([Wrapper({"k": unpicklable_lock()})])
    text = path_of(exc)
    assert text.count("Path to the object") == 1
    assert "-> value of key 'k': _thread.lock object" in text
    assert "-> item 0:" in text


def test_dispatch_table_reducer_error():
    class Special:
        pass

    def reduce_special(obj):
        raise RuntimeError("reducer failed")

    copyreg.pickle(Special, reduce_special)
    try:
        exc, text = failure({"s": Special()})
    finally:
        copyreg.dispatch_table.pop(Special)
    assert isinstance(exc, RuntimeError)
    assert lines(text) == [f"-> value of key 's': {_obj(Special)}"]


def test_deep_recursion_keeps_its_message_without_a_path():
    data = []
    node = data
    for _ in range(100_000):
        node.append([])
        node = node[0]
    with pytest.raises(pickle.PicklingError) as info:
        cloudpickle.dumps(data)
    assert "recursion" in str(info.value)
    assert "Path to the object" not in str(info.value)
    assert not getattr(info.value, "__notes__", None)


def test_long_paths_are_shortened():
    # Deep but not too deep: 500 levels, failing at the bottom.
    data = [unpicklable_lock()]
    for _ in range(500):
        data = [data]
    _, text = failure(data)
    assert "steps omitted" in text
    assert len(text.splitlines()) < 200
    assert text.rstrip().endswith("_thread.lock object")


def test_engine_keeps_working_and_releases_the_path():
    lock = unpicklable_lock()
    # PyPy has no sys.getrefcount: there the lock must be freed once dropped.
    before = sys.getrefcount(lock) if hasattr(sys, "getrefcount") else None
    for _ in range(50):
        with pytest.raises(TypeError) as info:
            cloudpickle.dumps({"a": [lock]})
        # The path text names the object; the exception does not keep the
        # steps' objects alive after it is gone.
        del info
    gc.collect()
    if before is not None:
        assert sys.getrefcount(lock) == before
    else:
        ref = weakref.ref(lock)
        del lock
        # PyPy frees objects that went through its C API emulation (cpyext)
        # only after a few major collections.
        for _ in range(6):
            gc.collect()
        assert ref() is None
    assert pickle.loads(cloudpickle.dumps({"ok": [1, 2]})) == {"ok": [1, 2]}
