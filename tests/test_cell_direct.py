"""Cells written without their reduce tuples.

In a one-shot dump at protocol 2 and above, a cell whose dispatch-table
reducer is cloudpickle's own ``_cell_reduce`` is written as
``(_make_cell, (value,))`` or ``(_make_empty_cell, ())`` would be, without
building those tuples (src/pickler/function_writer.rs,
``save_cell_direct``). Each test compares the payload (or the error and its
path) with the engine's general path (fast paths off), which builds and
walks the reduction, and loads the payload back.
"""

import pickle
import sys
import types

import cloudpickle
import pytest
from _helpers import assert_same_as_general as _same
from _helpers import general_path as _general
from _helpers import unpicklable_lock

PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)


def _closure_over(value):
    def f():
        return value

    return f


def _empty_cell_closure():
    def f():
        return later  # noqa: F821

    if False:
        later = 1  # noqa: F841
    return f


def _recursive():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    return fact


def _mutual():
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return False if n == 0 else even(n - 1)

    return even, odd


VALUES = [
    None,
    0,
    1.5,
    "text",
    b"bytes",
    (1, 2),
    [1, [2, 3]],
    {"a": 1},
    {3, 1, 2},
    frozenset({"b", "a"}),
    types.SimpleNamespace(x=1),
    len,
    sys,
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_cell_values(protocol, value):
    f = _closure_over(value)
    payload = _same(f, protocol)
    assert pickle.loads(payload)() == value


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cells_shared_and_bare(protocol):
    f = _closure_over([1, 2])
    cell = f.__closure__[0]
    g = types.FunctionType(f.__code__, f.__globals__, "g", None, (cell,))
    objs = [f, g, cell, cell, types.CellType(), types.CellType(f)]
    loaded = pickle.loads(_same(objs, protocol))
    assert loaded[2] is loaded[3]
    assert loaded[0]() == [1, 2]
    assert loaded[5].cell_contents() == [1, 2]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_empty_cell(protocol):
    f = _empty_cell_closure()
    loaded = pickle.loads(_same(f, protocol))
    with pytest.raises(NameError):
        loaded()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recursive_closures(protocol):
    fact = _recursive()
    assert pickle.loads(_same(fact, protocol))(5) == 120
    even, odd = _mutual()
    loaded_even = pickle.loads(_same(even, protocol))
    assert loaded_even(10) is True
    loaded = pickle.loads(_same([odd, even], protocol))
    assert loaded[0](3) is True
    # A cell holding a list that holds the cell.
    cell = types.CellType()
    cell.cell_contents = [cell]
    loaded_cell = pickle.loads(_same(cell, protocol))
    assert loaded_cell.cell_contents[0] is loaded_cell


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_cell_value_fails(protocol):
    f = _closure_over([1, unpicklable_lock()])
    cell = f.__closure__[0]

    def failure(obj):
        with pytest.raises(Exception) as info:
            cloudpickle.dumps(obj, protocol)
        return type(info.value), str(info.value), getattr(info.value, "__notes__", None)

    for obj in (f, cell, [cell]):
        assert failure(obj) == _general(lambda: failure(obj))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickler_memo_keeps_the_arguments(protocol):
    # A Pickler's memo is seen by its user: the general path is taken there,
    # with the same bytes.
    import io

    f = _closure_over((1, 2))
    buf = io.BytesIO()
    p = cloudpickle.Pickler(buf, protocol)
    p.dump(f)
    p.dump(f.__closure__[0])
    buf2 = io.BytesIO()
    q = cloudpickle.Pickler(buf2, protocol)
    _general(lambda: (q.dump(f), q.dump(f.__closure__[0])))
    assert buf.getvalue() == buf2.getvalue()
    assert len(p.memo) == len(q.memo)
