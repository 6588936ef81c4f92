"""Ints are read from the object itself when they fit one digit
(``compact_long`` in ``src/pickler/atoms.rs``): every size around the digit
boundaries must pickle to pickle's bytes, at every protocol."""

import pickle

import cloudpickle
import pytest


def _ints():
    values = {0, 1, -1}
    for bits in (7, 8, 15, 16, 29, 30, 31, 32, 59, 60, 62, 63, 64, 90):
        for delta in (-1, 0, 1):
            values.update({(1 << bits) + delta, -(1 << bits) + delta})
    return [True, False, *sorted(values, key=lambda v: (abs(v), v))]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_ints_as_pickle_writes_them(protocol):
    values = _ints()
    assert cloudpickle.dumps(values, protocol) == pickle.dumps(values, protocol)
    for v in values:
        assert cloudpickle.dumps(v, protocol) == pickle.dumps(v, protocol)
    assert pickle.loads(cloudpickle.dumps(values, protocol)) == values
