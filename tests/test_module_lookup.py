"""Objects whose ``__module__`` is None: found by scanning ``sys.modules``
(the result is remembered, and re-checked on every later call)."""

import pickle
import sys
import types

import cloudpickle


def _module_with(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def test_module_none_found_by_scan_and_pickled_by_reference():
    def helper(x):
        return x + 1

    module = _module_with("_cp_scan_a", helper=helper)
    helper.__module__ = None
    helper.__qualname__ = "helper"
    try:
        for _ in range(3):  # the second and third calls use the remembered module
            payload = cloudpickle.dumps(helper)
            assert payload == pickle.dumps(helper, cloudpickle.DEFAULT_PROTOCOL)
            assert pickle.loads(payload) is helper
    finally:
        del sys.modules[module.__name__]


def test_remembered_module_rechecked_when_object_moves():
    def helper(x):
        return x + 2

    first = _module_with("_cp_scan_b1", helper=helper)
    helper.__module__ = None
    helper.__qualname__ = "helper"
    try:
        assert b"_cp_scan_b1" in cloudpickle.dumps(helper)
        # The object leaves the remembered module for another one.
        del first.helper
        second = _module_with("_cp_scan_b2", helper=helper)
        payload = cloudpickle.dumps(helper)
        assert b"_cp_scan_b2" in payload and b"_cp_scan_b1" not in payload
        assert pickle.loads(payload) is helper
        del sys.modules[second.__name__]
        # Found nowhere any more: it goes by value and still works.
        assert pickle.loads(cloudpickle.dumps(helper))(1) == 3
    finally:
        sys.modules.pop("_cp_scan_b1", None)
        sys.modules.pop("_cp_scan_b2", None)
