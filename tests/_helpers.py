"""Assertion helpers shared by the test modules (not a test module itself)."""

import difflib
import io
import math
import pickle
import pickletools
import sys
import threading

import cloudpickle

PROTOCOLS = tuple(range(0, pickle.HIGHEST_PROTOCOL + 1))

_MAX_DIFF_LINES = 80


def disassemble(data):
    """``pickletools.dis`` output of ``data`` as a list of lines (best effort)."""
    out = io.StringIO()
    try:
        pickletools.dis(data, out=out)
    except Exception as exc:  # malformed pickle: show what we have
        out.write(f"<pickletools.dis failed: {type(exc).__name__}: {exc}>\n")
    return out.getvalue().splitlines()


def describe_difference(actual, expected):
    """A short human readable explanation of how two pickles differ."""
    if len(actual) > 200_000 or len(expected) > 200_000:
        # Disassembling huge pickles is slow and unreadable: locate the spot.
        pos = next(
            (i for i, (a, b) in enumerate(zip(actual, expected)) if a != b),
            min(len(actual), len(expected)),
        )
        return (
            f"lengths actual={len(actual)} expected={len(expected)}; first difference "
            f"at byte {pos}: actual={actual[max(0, pos - 20) : pos + 20]!r} "
            f"expected={expected[max(0, pos - 20) : pos + 20]!r}"
        )
    diff = list(
        difflib.unified_diff(
            disassemble(expected),
            disassemble(actual),
            fromfile="pickle (expected)",
            tofile="cloudpickle (actual)",
            lineterm="",
        )
    )
    if len(diff) > _MAX_DIFF_LINES:
        diff = diff[:_MAX_DIFF_LINES] + [f"... ({len(diff) - _MAX_DIFF_LINES} more lines)"]
    return "\n".join(diff)


def assert_same_bytes(actual, expected):
    """Fail with a disassembly diff unless both pickles are identical."""
    assert isinstance(actual, bytes), f"expected bytes, got {type(actual).__name__}"
    if actual != expected:
        raise AssertionError(
            "cloudpickle output differs from pickle output:\n"
            + describe_difference(actual, expected)
        )


def outcome(func, *args, **kwargs):
    """Run ``func``; return ``("ok", result)`` or ``("raise", exception)``."""
    try:
        return "ok", func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - we compare exceptions on purpose
        return "raise", exc


def assert_same_outcome(actual_func, expected_func):
    """Both callables must return equal bytes, or raise the same exception type.

    Returns the (common) result, or None when both raised.
    """
    kind_e, expected = outcome(expected_func)
    kind_a, actual = outcome(actual_func)
    if kind_e == "raise":
        assert kind_a == "raise", (
            f"pickle raised {type(expected).__name__}: {expected} but cloudpickle "
            f"succeeded and returned {actual!r:.300}"
        )
        assert type(actual) is type(expected), (
            f"pickle raised {type(expected).__name__}: {expected}\n"
            f"cloudpickle raised {type(actual).__name__}: {actual}"
        )
        return None
    if kind_a == "raise":
        raise AssertionError(
            f"pickle succeeded but cloudpickle raised {type(actual).__name__}: {actual}"
        ) from actual
    assert_same_bytes(actual, expected)
    return actual


def assert_dumps_like_pickle(obj, protocol):
    """``cloudpickle.dumps(obj, protocol)`` must equal ``pickle.dumps(obj, protocol)``
    byte for byte (or both must raise the same exception type).

    Returns the pickle, or None when pickle itself cannot pickle ``obj``.
    """
    return assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )


def equal_or_both_nan(a, b):
    """Equality that also holds for floats/complexes with NaN parts in the same places."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, complex) and isinstance(b, complex):
        return equal_or_both_nan(a.real, b.real) and equal_or_both_nan(a.imag, b.imag)
    return type(a) is type(b) and a == b


class _RefusingLock:
    """Refuses to be pickled as CPython's ``_thread.lock`` does."""

    def __reduce_ex__(self, protocol):
        raise TypeError("cannot pickle '_thread.lock' object")


_RefusingLock.__module__ = "_thread"
_RefusingLock.__name__ = _RefusingLock.__qualname__ = "lock"


def unpicklable_lock():
    """A lock, which pickle refuses with a TypeError: ``threading.Lock()``.

    On PyPy a ``_thread.lock`` does not refuse pickling itself (its
    ``__reduce_ex__`` is object's): pickle fails on its class, which
    ``_thread`` does not name, and cloudpickle one step further, on the
    builtin methods of that class pickled by value (a clear PicklingError
    whose path goes on through the class). There a stand-in named
    ``_thread.lock`` that refuses as CPython's lock does keeps the failure
    paths the tests expect."""
    if sys.implementation.name == "pypy":
        return _RefusingLock()
    return threading.Lock()


def general_path(dump):
    """``dump()`` run with the engine's fast paths off: its general path,
    the oracle for every fast path."""
    from cloudpickle import _engine

    prev = _engine._set_fast_paths(False)
    try:
        return dump()
    finally:
        _engine._set_fast_paths(prev)


def assert_same_as_general(obj, protocol):
    """``dumps(obj)`` with the fast paths on equals the general path's;
    returns the payload."""
    fast = cloudpickle.dumps(obj, protocol)
    assert fast == general_path(lambda: cloudpickle.dumps(obj, protocol))
    return fast
