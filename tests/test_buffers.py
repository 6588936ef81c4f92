"""Protocol 5 out-of-band buffers (``pickle.PickleBuffer`` and ``buffer_callback``)."""

import array
import io
import pickle

import cloudpickle
import pytest
from _helpers import assert_same_bytes, assert_same_outcome


class ZeroCopyBytearray(bytearray):
    """A bytearray that hands its memory out-of-band at protocol 5 (PEP 574 style)."""

    def __reduce_ex__(self, protocol):
        if protocol >= 5:
            return reconstruct_zero_copy, (pickle.PickleBuffer(self),), None
        return reconstruct_zero_copy, (bytearray(self),)


def reconstruct_zero_copy(obj):
    """Rebuild a ZeroCopyBytearray, reusing the original object when handed its buffer."""
    with memoryview(obj) as m:
        base = m.obj
        if type(base) is ZeroCopyBytearray:
            return base  # zero-copy: the very same object
        return ZeroCopyBytearray(base)


_TO_RELEASE = []


def _pb(target):
    """A ``pickle.PickleBuffer`` over ``target``, released after the test."""
    if isinstance(target, memoryview):
        _TO_RELEASE.append(target)
    buf = pickle.PickleBuffer(target)
    _TO_RELEASE.append(buf)
    return buf


@pytest.fixture(autouse=True)
def _release_buffers():
    """Release every PickleBuffer (then memoryview) a test created.

    CPython's PickleBuffer can crash the garbage collector when it sits in a
    reference cycle together with the memoryview it views (as happens when a
    failing test's traceback keeps both alive): releasing them explicitly,
    newest first, keeps a failing test from taking the whole session down.
    """
    yield
    while _TO_RELEASE:
        item = _TO_RELEASE.pop()
        try:
            item.release()
        except Exception:  # still exported somewhere: nothing more to do
            pass


class Collector:
    """A buffer_callback recording buffers and answering a fixed value."""

    def __init__(self, answer=False):
        self.answer = answer
        self.buffers = []

    def __call__(self, buf):
        self.buffers.append(buf)
        return self.answer


def _both(obj, protocol=5, answer=False):
    """Pickle ``obj`` with pickle and with cloudpickle, each with its own collector."""
    expected_cb, actual_cb = Collector(answer), Collector(answer)
    expected = pickle.dumps(obj, protocol=protocol, buffer_callback=expected_cb)
    actual = cloudpickle.dumps(obj, protocol=protocol, buffer_callback=actual_cb)
    return actual, expected, actual_cb, expected_cb


BUFFER_OBJECTS = {
    "readonly-bytes": lambda: _pb(b"immutable payload"),
    "writable-bytearray": lambda: _pb(bytearray(b"mutable payload")),
    "empty": lambda: _pb(b""),
    "large": lambda: _pb(bytearray(200_000)),
    "memoryview-slice": lambda: _pb(memoryview(b"0123456789")[2:7]),
    "array": lambda: _pb(array.array("d", [1.0, 2.0, 3.0])),
    "in-container": lambda: [1, _pb(b"a"), {"k": _pb(bytearray(b"b"))}],
    "same-buffer-twice": lambda: [_pb(b"xy")] * 2,
}


@pytest.mark.parametrize("name", sorted(BUFFER_OBJECTS))
def test_in_band_without_callback(name):
    """Without a callback, buffers are written in-band exactly like pickle."""
    obj = BUFFER_OBJECTS[name]()
    assert_same_bytes(cloudpickle.dumps(obj, protocol=5), pickle.dumps(obj, protocol=5))


@pytest.mark.parametrize("name", sorted(BUFFER_OBJECTS))
def test_in_band_when_callback_returns_true(name):
    """A callback returning a true value keeps the buffer in-band, like pickle."""
    obj = BUFFER_OBJECTS[name]()
    for answer in (True, 1, "yes"):
        actual, expected, actual_cb, expected_cb = _both(obj, answer=answer)
        assert_same_bytes(actual, expected)
        assert len(actual_cb.buffers) == len(expected_cb.buffers)


@pytest.mark.parametrize("answer", [False, None, 0, ""], ids=repr)
@pytest.mark.parametrize("name", sorted(BUFFER_OBJECTS))
def test_out_of_band(name, answer):
    """A callback returning a false value moves buffers out-of-band
    (NEXT_BUFFER/READONLY_BUFFER), byte-identical to pickle."""
    obj = BUFFER_OBJECTS[name]()
    actual, expected, actual_cb, expected_cb = _both(obj, answer=answer)
    assert_same_bytes(actual, expected)
    assert len(actual_cb.buffers) == len(expected_cb.buffers) >= 1
    for got, want in zip(actual_cb.buffers, expected_cb.buffers):
        assert isinstance(got, pickle.PickleBuffer)
        assert bytes(got.raw()) == bytes(want.raw())
        assert got.raw().readonly == want.raw().readonly


def test_out_of_band_round_trip():
    """Out-of-band data loads back with ``pickle.loads(data, buffers=...)``."""
    obj = {"ro": _pb(b"read-only"), "rw": _pb(bytearray(b"writable"))}
    collector = Collector(False)
    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=collector)
    assert b"read-only" not in data and b"writable" not in data
    loaded = pickle.loads(data, buffers=collector.buffers)
    assert bytes(loaded["ro"]) == b"read-only"
    assert bytes(loaded["rw"]) == b"writable"
    assert memoryview(loaded["ro"]).readonly
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)  # the buffers are needed


def test_out_of_band_zero_copy():
    """A writable buffer loaded from the collected buffers is the very same memory."""
    original = ZeroCopyBytearray(b"zero-copy payload" * 10)
    collector = Collector(False)
    data = cloudpickle.dumps(original, protocol=5, buffer_callback=collector)
    assert_same_bytes(data, pickle.dumps(original, protocol=5, buffer_callback=lambda b: False))
    loaded = pickle.loads(data, buffers=collector.buffers)
    assert loaded is original
    # Without out-of-band, the data is copied into the pickle.
    in_band = cloudpickle.dumps(original, protocol=5)
    copy = pickle.loads(in_band)
    assert copy == original and copy is not original


def test_out_of_band_shares_memory_with_source():
    """The PickleBuffer handed to the callback views the source's memory."""
    source = bytearray(b"abcdef")
    collector = Collector(False)
    data = cloudpickle.dumps(_pb(source), protocol=5, buffer_callback=collector)
    loaded = pickle.loads(data, buffers=collector.buffers)
    view = memoryview(loaded)
    view[0] = ord("Z")
    assert source == bytearray(b"Zbcdef")


def test_zero_copy_class_in_band_identity():
    """The PEP 574 style class pickles identically at every protocol without callback."""
    obj = [ZeroCopyBytearray(b"abc"), ZeroCopyBytearray(b"")]
    for protocol in range(0, 6):
        assert_same_bytes(
            cloudpickle.dumps(obj, protocol=protocol), pickle.dumps(obj, protocol=protocol)
        )


def test_buffer_callback_with_dump_and_pickler():
    """``dump`` and ``Pickler`` accept ``buffer_callback`` too."""
    obj = [_pb(b"one"), _pb(bytearray(b"two"))]
    expected = pickle.dumps(obj, protocol=5, buffer_callback=lambda b: False)

    collector = Collector(False)
    buf = io.BytesIO()
    cloudpickle.dump(obj, buf, protocol=5, buffer_callback=collector)
    assert_same_bytes(buf.getvalue(), expected)
    assert len(collector.buffers) == 2

    collector = Collector(False)
    buf = io.BytesIO()
    cloudpickle.Pickler(buf, protocol=5, buffer_callback=collector).dump(obj)
    assert_same_bytes(buf.getvalue(), expected)
    assert [bytes(b.raw()) for b in collector.buffers] == [b"one", b"two"]


def test_callback_called_per_occurrence():
    """The callback is called once per occurrence of a PickleBuffer, as pickle does."""
    pb = _pb(b"shared")
    obj = [pb, pb, (pb,)]
    for answer in (False, True):
        actual, expected, actual_cb, expected_cb = _both(obj, answer=answer)
        assert_same_bytes(actual, expected)
        assert len(actual_cb.buffers) == len(expected_cb.buffers)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_picklebuffer_needs_protocol_5(protocol):
    """Pickling a PickleBuffer below protocol 5 fails with pickle's exception type."""
    obj = _pb(b"data")
    assert_same_outcome(
        lambda: cloudpickle.dumps(obj, protocol=protocol),
        lambda: pickle.dumps(obj, protocol=protocol),
    )
    with pytest.raises(pickle.PicklingError):
        cloudpickle.dumps(obj, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_buffer_callback_needs_protocol_5(protocol):
    """A ``buffer_callback`` with protocol < 5 raises ValueError everywhere."""
    with pytest.raises(ValueError):
        cloudpickle.dumps([1], protocol=protocol, buffer_callback=list().append)
    with pytest.raises(ValueError):
        cloudpickle.dump([1], io.BytesIO(), protocol=protocol, buffer_callback=list().append)
    with pytest.raises(ValueError):
        cloudpickle.Pickler(io.BytesIO(), protocol=protocol, buffer_callback=list().append)


def test_non_contiguous_buffer():
    """A PickleBuffer over a non-contiguous view fails like pickle (in- and out-of-band)."""
    obj = _pb(memoryview(bytearray(b"abcdefgh"))[::2])
    for callback in (None, lambda b: False, lambda b: True):
        assert_same_outcome(
            lambda: cloudpickle.dumps(obj, protocol=5, buffer_callback=callback),
            lambda: pickle.dumps(obj, protocol=5, buffer_callback=callback),
        )


def test_buffer_callback_exception_propagates():
    """An exception raised by the callback propagates unchanged."""

    class Boom(Exception):
        pass

    def callback(buf):
        raise Boom("from callback")

    with pytest.raises(Boom, match="from callback"):
        cloudpickle.dumps(_pb(b"x"), protocol=5, buffer_callback=callback)


def test_buffer_callback_not_called_without_buffers():
    """Data without PickleBuffers never calls the callback; bytes are unchanged."""
    collector = Collector(False)
    obj = [b"bytes are not buffers", bytearray(b"nor are bytearrays"), memoryview]
    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=collector)
    assert collector.buffers == []
    assert_same_bytes(data, pickle.dumps(obj, protocol=5))


def test_buffer_callback_with_default_protocol():
    """Without an explicit protocol (DEFAULT_PROTOCOL = 5) the callback is honoured."""
    obj = [_pb(b"default"), _pb(bytearray(b"protocol"))]
    collector = Collector(False)
    data = cloudpickle.dumps(obj, buffer_callback=collector)
    assert_same_bytes(data, pickle.dumps(obj, protocol=5, buffer_callback=lambda b: False))
    assert len(collector.buffers) == 2
    buf = io.BytesIO()
    cloudpickle.dump(obj, buf, buffer_callback=Collector(False))
    assert_same_bytes(buf.getvalue(), data)


class _Scribbler:
    """Overwrites ``target`` when pickled: a later object in the same dump
    changing a buffer that was already written."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target[:4] = b"XXXX"
        return (str, ("scribbled",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_large_payloads_go_straight_into_the_result(protocol):
    """Payloads of 64 KiB or more are copied straight into the final bytes
    object, between small opcodes, several times over (the result grows):
    the bytes are pickle's, and a writable buffer changed later in the same
    dump keeps the content it had when it was written."""
    sizes = [65_536, 70_001, 1_000_000, 3_000_000, 131_072]
    for make in (bytes, bytearray):
        items = []
        for i, n in enumerate(sizes):
            items.append({"i": i, "text": "x" * (n // 3)})
            items.append(make(bytes([i + 1])) * n)
        if protocol >= 5:
            target = bytearray(b"A" * 100_000)
            items.append(_pb(target))
            items.append(_Scribbler(target))
        expected = pickle.dumps(items, protocol=protocol)
        if protocol >= 5:
            target[:4] = b"AAAA"
        assert_same_bytes(cloudpickle.dumps(items, protocol=protocol), expected)
        if protocol >= 5:
            loaded = pickle.loads(expected)
            assert bytes(loaded[-2][:4]) == b"AAAA"
