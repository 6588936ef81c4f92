"""Pickling a function again after it changed gives the new state: nothing
about a function is cached between dumps calls (only what derives from its
immutable code object is)."""

import pickle

import cloudpickle

COUNTER = 1


def _make():
    cell_value = [10]

    def f(x, y=1, *, z=2):
        return x + y + z + cell_value[0] + COUNTER

    return f, cell_value


def _load(f):
    return pickle.loads(cloudpickle.dumps(f))


def test_defaults_change_is_seen():
    f, _ = _make()
    assert _load(f)(0) == 14
    f.__defaults__ = (100,)
    assert _load(f)(0) == 113
    f.__kwdefaults__ = {"z": 1000}
    assert _load(f)(0) == 1111


def test_closure_contents_change_is_seen():
    f, cell_value = _make()
    before = cloudpickle.dumps(f)
    cell_value[0] = 500
    after = cloudpickle.dumps(f)
    assert before != after
    assert pickle.loads(after)(0) == 504


def test_rebinding_a_closure_cell_is_seen():
    def outer():
        n = 1

        def get():
            return n

        def set_(v):
            nonlocal n
            n = v

        return get, set_

    get, set_ = outer()
    assert _load(get)() == 1
    set_(42)
    assert _load(get)() == 42


def test_global_value_change_is_seen():
    global COUNTER
    f, _ = _make()
    old = COUNTER
    try:
        assert _load(f)(0) == 14
        COUNTER = 50
        assert _load(f)(0) == 63
    finally:
        COUNTER = old


def test_attribute_change_is_seen():
    f, _ = _make()
    f.tag = "first"
    assert _load(f).tag == "first"
    f.tag = "second"
    assert _load(f).tag == "second"
    del f.tag
    assert not hasattr(_load(f), "tag")


def test_code_replacement_is_seen():
    f, _ = _make()

    cell_value = [0]

    def other(x, y=1, *, z=2):
        return -x + cell_value[0]

    f.__code__ = other.__code__
    # The new code runs with the function's own cell ([10]).
    assert f(5) == 5
    assert _load(f)(5) == 5
