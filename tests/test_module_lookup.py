"""Objects whose ``__module__`` is None: found by scanning ``sys.modules``
(the result is remembered, and re-checked on every later call)."""

import pickle
import subprocess
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


_WHICHMODULE_SCRIPT = """
import multiprocessing  # imports many modules first, as in real programs
import sys
import cloudpickle
from cloudpickle.cloudpickle import _whichmodule, dump, dumps, _make_function

for func in (dumps, dump, _make_function):
    func.__module__ = None
    print(_whichmodule(func, func.__name__))
# Only the engine holds it: found there (it is importable from there).
private = cloudpickle._engine.pickler_dump
private.__module__ = None
print(_whichmodule(private, "pickler_dump"))
"""


def test_whichmodule_names_engine_objects_after_the_public_module():
    # The engine module (and the Python helpers) finish importing before
    # cloudpickle.cloudpickle, so they come first in sys.modules; an object
    # the public module exposes is found under the public module's name, as
    # with the reference, even when its __module__ was cleared.
    out = subprocess.run(
        [sys.executable, "-c", _WHICHMODULE_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "cloudpickle.cloudpickle",
        "cloudpickle.cloudpickle",
        "cloudpickle.cloudpickle",
        "cloudpickle._engine",
    ]


def test_engine_functions_pickle_by_reference_under_the_public_module():
    # By reference, through their __module__ (as the reference's dumps and
    # dump), and through the scan when it was cleared.
    public = cloudpickle.cloudpickle
    for func in (cloudpickle.dumps, cloudpickle.dump):
        assert func.__module__ == "cloudpickle.cloudpickle"
        payload = cloudpickle.dumps(func)
        assert b"cloudpickle._engine" not in payload
        assert pickle.loads(payload) is func
    saved = public.dumps.__module__
    public.dumps.__module__ = None
    try:
        payload = cloudpickle.dumps(public.dumps)
        assert b"cloudpickle.cloudpickle" in payload and b"_engine" not in payload
        assert pickle.loads(payload) is public.dumps
        assert public._whichmodule(public.dumps, "dumps") == "cloudpickle.cloudpickle"
    finally:
        public.dumps.__module__ = saved
