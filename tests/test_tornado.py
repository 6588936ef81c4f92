"""Tornado coroutines pickle by value like any decorated function (the
reference has no special case for them since 3.0), and run after loading."""

import subprocess
import sys
import warnings

import cloudpickle
import pytest

gen = pytest.importorskip("tornado.gen")
ioloop = pytest.importorskip("tornado.ioloop")


def make_coroutine():
    offset = 10

    @gen.coroutine
    def add_later(x):
        yield gen.sleep(0)
        return x + offset

    return add_later


def test_tornado_coroutine_round_trip_in_another_process():
    coroutine = make_coroutine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert cloudpickle.cloudpickle.is_tornado_coroutine(coroutine)
    payload = cloudpickle.dumps(coroutine)
    code = (
        "import pickle, sys\n"
        "from tornado.ioloop import IOLoop\n"
        "f = pickle.loads(sys.stdin.buffer.read())\n"
        "print(IOLoop.current().run_sync(lambda: f(5)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"15"


def test_is_tornado_coroutine_is_false_for_plain_functions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert not cloudpickle.cloudpickle.is_tornado_coroutine(len)
        assert not cloudpickle.cloudpickle.is_tornado_coroutine(lambda: 0)


def test_is_tornado_coroutine_is_reachable_from_the_package_and_deprecated():
    # As in the reference: `cloudpickle.is_tornado_coroutine` exists (the
    # package star-imports cloudpickle.cloudpickle) and warns on every call.
    assert cloudpickle.is_tornado_coroutine is cloudpickle.cloudpickle.is_tornado_coroutine
    coroutine = make_coroutine()
    with pytest.warns(DeprecationWarning, match="tornado.gen.is_coroutine_function"):
        assert cloudpickle.is_tornado_coroutine(coroutine) is True
    with pytest.warns(DeprecationWarning, match="removed in cloudpickle 4.0"):
        assert cloudpickle.is_tornado_coroutine(lambda: 0) is False


def test_is_tornado_coroutine_without_tornado_imported():
    # Tornado not imported: False, without importing it.
    code = (
        "import sys, warnings\n"
        "import cloudpickle\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    result = cloudpickle.is_tornado_coroutine(lambda: 0)\n"
        "print(result, [w.category.__name__ for w in caught], 'tornado' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [b"False", b"['DeprecationWarning']", b"False"]
