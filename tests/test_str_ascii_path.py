"""Short ASCII strings are written from their characters directly
(src/py_compat.rs, ``str_ascii``): the same bytes as ``pickle`` and as the
engine's general path (fast paths off), around the 255-byte boundary of
SHORT_BINUNICODE and for strings that are not ASCII."""

import pickle

import cloudpickle
import pytest
from cloudpickle import _engine

STRINGS = [
    "",
    "a",
    "abc",
    "x" * 254,
    "x" * 255,
    "x" * 256,
    "é" * 127,
    "é" * 128,
    "€" * 85,
    "€" * 86,
    "\U0001f600" * 63,
    "\U0001f600" * 64,
    "a\udc80b",
    "\x7f" * 255,
    "\x80",
    "".join(chr(i) for i in range(128)),
]


class Sub(str):
    pass


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_strings_fast_and_general(protocol):
    data = [STRINGS, [s + "" for s in STRINGS], {s: s for s in STRINGS}, Sub("abc")]
    fast = cloudpickle.dumps(data, protocol)
    prev = _engine._set_fast_paths(False)
    try:
        general = cloudpickle.dumps(data, protocol)
    finally:
        _engine._set_fast_paths(prev)
    assert fast == general
    assert fast == pickle.dumps(data, protocol)
    assert pickle.loads(fast) == data
