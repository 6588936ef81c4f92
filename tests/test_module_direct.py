"""Imported modules are pickled as ``subimport(name)``. In a one-shot dump
at protocol 2 and above that reduction is written without building its
tuples (src/pickler/mod.rs, ``write_reduce1``). The payloads are compared
with the engine's general path (fast paths off) and loaded back; modules
that are not importable by name go the general way."""

import collections.abc
import math
import os.path
import pickle
import sys
import types

import cloudpickle
import pytest
from _helpers import assert_same_as_general as _same

PROTOCOLS = range(0, pickle.HIGHEST_PROTOCOL + 1)


def _uses_math(x):
    return math.floor(x) + os.path.sep.count("/")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_imported_modules(protocol):
    objs = [math, os.path, collections.abc, math, sys, [os, os.path]]
    loaded = pickle.loads(_same(objs, protocol))
    assert loaded[0] is math and loaded[1] is os.path and loaded[3] is math
    assert loaded[5][0] is os


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_modules_in_closures_and_globals(protocol):
    mod = math

    def f(x):
        return mod.floor(x)

    loaded = pickle.loads(_same([f, _uses_math], protocol))
    assert loaded[0](2.5) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dynamic_and_odd_modules(protocol):
    dynamic = types.ModuleType("not_imported_anywhere")
    dynamic.x = 1
    odd = types.ModuleType("odd")
    odd.__name__ = 42
    renamed = types.ModuleType("math")  # not the module sys.modules has
    for obj in (dynamic, [dynamic, dynamic], renamed, odd):
        _same(obj, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_module_registered_by_value(protocol):
    import _fbv_helpers as helpers

    cloudpickle.register_pickle_by_value(helpers)
    try:
        _same(helpers, protocol)
    finally:
        cloudpickle.unregister_pickle_by_value(helpers)
    assert pickle.loads(_same(helpers, protocol)) is helpers
