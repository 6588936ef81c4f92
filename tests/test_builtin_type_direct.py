"""Types of the `types` module that `builtins` does not name (code, cell,
function, ...) are pickled as ``_builtin_type(name)``. In a one-shot dump at
protocol 2 and above that reduction is written without building its tuples
(src/pickler/function_writer.rs, ``save_builtin_type_reduction``). The
payloads are compared with the engine's general path (fast paths off) and
loaded back."""

import pickle
import types

import pytest
from _helpers import assert_same_as_general as _same
from cloudpickle import cloudpickle as cp_module

PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)
NAMED = sorted(cp_module._BUILTIN_TYPE_NAMES.items(), key=lambda kv: kv[1])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tp", [tp for tp, _ in NAMED], ids=[n for _, n in NAMED])
def test_named_types(tp, protocol):
    assert pickle.loads(_same(tp, protocol)) is tp
    loaded = pickle.loads(_same([tp, (tp, tp), {"k": tp}], protocol))
    assert loaded[0] is loaded[1][0] is loaded[2]["k"] is tp


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_all_named_types_together_and_others(protocol):
    objs = [tp for tp, _ in NAMED] + [type(None), type(...), type(NotImplemented), int, type]
    assert pickle.loads(_same(objs, protocol)) == objs


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_in_a_closure_and_a_class(protocol):
    kind = types.CodeType

    def f():
        return kind

    class Holder:
        attr = types.CellType

    loaded = pickle.loads(_same([f, Holder], protocol))
    assert loaded[0]() is types.CodeType
    assert loaded[1].attr is types.CellType
