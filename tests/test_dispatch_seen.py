"""What the dispatch tables gave for static types, kept between dumps.

The engine remembers, from one dump to the next on a thread, which reducer
(or none) the dispatch dicts hold for the static types a function by value
needs (builtin functions, code objects, functions, cells), as long as the
dicts are the same and unchanged (src/pickler/dispatch.rs, `DispatchSeen`).
Each test changes the tables between dumps or in the middle of one (an entry
added or removed, a map inserted into cloudpickle's ChainMap, a Pickler's own
table freed and another made, maybe at the same address) and compares the
payload with the engine's general path (fast paths off), which consults the
tables at every lookup.
"""

import copyreg
import gc
import io
import pickle
import sys
import types

import cloudpickle
import pytest
from _helpers import general_path as _general

PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)
STATIC_TYPES = [types.BuiltinFunctionType, types.CodeType, types.FunctionType, types.CellType]


def _make_closure():
    scale = 3

    def closure(x):
        return x * scale + len(sys.argv)

    return closure


CLOSURE = _make_closure()


# PyPy's builtin functions are functions (types.FunctionType), which
# cloudpickle's own rules take first: no object in these payloads is of
# types.BuiltinFunctionType there, so nothing is marked. The payloads are
# still compared with the general path's.
MARKS = sys.implementation.name != "pypy"


def _marked(payload, text=b"marked"):
    return text in payload if MARKS else True


def _reduce_marked(obj):
    return str, (f"marked {type(obj).__name__}",)


def _both(dump):
    """(fast paths on, general path) payloads of ``dump()``, the fast one
    taken twice so that the second finds what the first remembered."""
    dump()
    return dump(), _general(dump)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tp", STATIC_TYPES, ids=lambda t: t.__name__)
def test_copyreg_entry_added_and_removed_between_dumps(tp, protocol):
    plain, _ = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    copyreg.dispatch_table[tp] = _reduce_marked
    try:
        fast, general = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    finally:
        del copyreg.dispatch_table[tp]
    assert fast == general
    if tp is types.BuiltinFunctionType:  # the others go by cloudpickle's rules first
        assert _marked(fast)
    after, general = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    assert after == general == plain
    assert pickle.loads(after)(2) == CLOSURE(2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tp", STATIC_TYPES, ids=lambda t: t.__name__)
def test_entry_added_mid_dump(tp, protocol):
    class Adds:
        def __reduce__(self):
            copyreg.dispatch_table[tp] = _reduce_marked
            return int, (7,)

    # A closure and a builtin function before the change (their types
    # remembered with no entry), another of each after it.
    obj = [CLOSURE, abs, Adds(), len, _make_closure()]

    def dump():
        try:
            return cloudpickle.dumps(obj, protocol)
        finally:
            copyreg.dispatch_table.pop(tp, None)

    fast, general = _both(dump)
    assert fast == general
    if tp is types.BuiltinFunctionType:
        assert _marked(fast)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_map_inserted_into_the_chainmap_between_dumps(protocol):
    maps = cloudpickle.Pickler.dispatch_table.maps
    plain, _ = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    maps.insert(0, {types.BuiltinFunctionType: _reduce_marked})
    try:
        fast, general = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    finally:
        del maps[0]
    assert fast == general
    assert _marked(fast)
    after, general = _both(lambda: cloudpickle.dumps(CLOSURE, protocol))
    assert after == general == plain


class OwnTablePickler(cloudpickle.Pickler):
    pass


def _table(**extra):
    """A Pickler's own dispatch dict: cloudpickle's entries (code objects
    need theirs), and ``extra`` for builtin functions."""
    base = cloudpickle.Pickler.dispatch_table
    table = {t: base[t] for t in (types.CodeType, types.CellType, types.ModuleType) if t in base}
    if extra:
        table[types.BuiltinFunctionType] = extra["builtin"]
    return table


def _dump_with_table(table, obj, protocol):
    f = io.BytesIO()
    p = OwnTablePickler(f, protocol)
    p.dispatch_table = table
    p.dump(obj)
    return f.getvalue()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_own_table_freed_and_another_made_at_its_address(protocol):
    """A Pickler's own dict, remembered empty, freed; a new dict with an
    entry, often at the same address (tried until it is): its entry is used."""
    reused = False
    for _ in range(50):
        table = _table()
        _dump_with_table(table, CLOSURE, protocol)
        _dump_with_table(table, CLOSURE, protocol)
        address = id(table)
        del table
        gc.collect()
        table = _table(builtin=_reduce_marked)
        reused |= id(table) == address
        fast = _dump_with_table(table, CLOSURE, protocol)
        general = _general(lambda: _dump_with_table(table, CLOSURE, protocol))
        assert fast == general
        assert _marked(fast)
        if reused:
            break
    if not reused and sys.implementation.name == "cpython":
        pytest.skip("no dict was made at the freed dict's address")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_own_table_changed_between_dumps(protocol):
    table = _table()
    plain = _dump_with_table(table, CLOSURE, protocol)
    assert _dump_with_table(table, CLOSURE, protocol) == plain
    table[types.BuiltinFunctionType] = _reduce_marked
    fast = _dump_with_table(table, CLOSURE, protocol)
    assert fast == _general(lambda: _dump_with_table(table, CLOSURE, protocol))
    assert _marked(fast)
    del table[types.BuiltinFunctionType]
    assert _dump_with_table(table, CLOSURE, protocol) == plain


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_replaced_between_dumps(protocol):
    """An entry replaced by another reducer: the new one is used."""

    def other(obj):
        return str, ("other",)

    copyreg.dispatch_table[types.BuiltinFunctionType] = _reduce_marked
    try:
        first = cloudpickle.dumps(CLOSURE, protocol)
        cloudpickle.dumps(CLOSURE, protocol)
        copyreg.dispatch_table[types.BuiltinFunctionType] = other
        gc.collect()
        second = cloudpickle.dumps(CLOSURE, protocol)
        general = _general(lambda: cloudpickle.dumps(CLOSURE, protocol))
    finally:
        del copyreg.dispatch_table[types.BuiltinFunctionType]
    assert _marked(first) and b"marked" not in second
    assert second == general
    assert _marked(second, b"other")
