"""The `Pickler` class's dispatch table, resolved once per thread.

One-shot dumps consult `cloudpickle.Pickler.dispatch_table` (a ChainMap of
cloudpickle's reducers and `copyreg.dispatch_table`) through its maps, read
as plain dicts. The engine keeps the maps it read from one dump to the next
on a thread while `Pickler.dispatch_table` is the same object, and checks
before every lookup that the ChainMap still has those maps
(src/pickler/dispatch.rs, `ResolvedClassTable`). Each test replaces or
changes the table between dumps or during one and compares the payload with
the engine's general path (fast paths off), which reads the table afresh in
every dump.
"""

import collections
import copyreg
import gc
import pickle
import types

import cloudpickle
import pytest
from _helpers import general_path as _general

PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)


def _make_closure():
    scale = 3

    def closure(x):
        return x * scale

    return closure


CLOSURE = _make_closure()


def _reduce_marked(obj):
    return str, (f"marked {type(obj).__name__}",)


def _check(dump):
    dump()
    fast = dump()
    assert fast == _general(dump)
    return fast


def _dump(protocol):
    return lambda: cloudpickle.dumps(CLOSURE, protocol)


@pytest.fixture
def restore_table():
    table = cloudpickle.Pickler.dispatch_table
    maps = list(table.maps)
    maps_attr = table.maps
    yield table
    cloudpickle.Pickler.dispatch_table = table
    table.maps = maps_attr
    table.maps[:] = maps


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_table_replaced_between_dumps(protocol, restore_table):
    plain = _check(_dump(protocol))
    cloudpickle.Pickler.dispatch_table = {**restore_table, types.CellType: _reduce_marked}
    marked = _check(_dump(protocol))
    assert b"marked cell" in marked
    cloudpickle.Pickler.dispatch_table = collections.ChainMap(
        {types.CodeType: _reduce_marked}, *restore_table.maps
    )
    assert b"marked code" in _check(_dump(protocol))
    cloudpickle.Pickler.dispatch_table = restore_table
    assert _check(_dump(protocol)) == plain


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_table_freed_and_another_made(protocol, restore_table):
    for i in range(6):
        table = dict(restore_table)
        if i % 2:
            table[types.CellType] = _reduce_marked
        cloudpickle.Pickler.dispatch_table = table
        payload = _check(_dump(protocol))
        assert (b"marked cell" in payload) == bool(i % 2)
        cloudpickle.Pickler.dispatch_table = restore_table
        del table
        gc.collect()
        _check(_dump(protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chainmap_maps_changed_between_dumps(protocol, restore_table):
    plain = _check(_dump(protocol))
    restore_table.maps.insert(0, {types.CellType: _reduce_marked})
    assert b"marked cell" in _check(_dump(protocol))
    del restore_table.maps[0]
    assert _check(_dump(protocol)) == plain
    # The list itself replaced.
    restore_table.maps = [{types.CodeType: _reduce_marked}] + list(restore_table.maps)
    assert b"marked code" in _check(_dump(protocol))
    restore_table.maps = restore_table.maps[1:]
    assert _check(_dump(protocol)) == plain
    # A map of the chain changed in place: cloudpickle's own reducers, then
    # copyreg's (which cloudpickle's entry for cells hides).
    own = restore_table.maps[0]
    saved = own[types.CellType]
    own[types.CellType] = _reduce_marked
    try:
        assert b"marked cell" in _check(_dump(protocol))
    finally:
        own[types.CellType] = saved
    assert _check(_dump(protocol)) == plain
    restore_table.maps[-1][types.CellType] = _reduce_marked
    try:
        assert _check(_dump(protocol)) == plain
    finally:
        del restore_table.maps[-1][types.CellType]
    assert _check(_dump(protocol)) == plain


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chainmap_changed_mid_dump(protocol, restore_table):
    # A reducer changes the ChainMap in the middle of a dump; the next
    # dumps see the table as it is then.
    class Changer:
        def __reduce__(self):
            restore_table.maps = [{types.CellType: _reduce_marked}] + list(restore_table.maps)
            return (str, ("changed",))

    saved = restore_table.maps

    def dump():
        restore_table.maps = saved
        return cloudpickle.dumps([CLOSURE, Changer(), _make_closure()], protocol)

    payload = _check(dump)
    assert b"marked cell" in payload
    after = _check(_dump(protocol))
    assert b"marked cell" in after
    restore_table.maps = saved
    assert b"marked cell" not in _check(_dump(protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_copyreg_table_changed_between_dumps(protocol):
    plain = _check(_dump(protocol))
    copyreg.dispatch_table[types.CellType] = _reduce_marked
    try:
        # cloudpickle's own reducers come first in the chain.
        assert _check(_dump(protocol)) == plain
    finally:
        del copyreg.dispatch_table[types.CellType]
    assert _check(_dump(protocol)) == plain
