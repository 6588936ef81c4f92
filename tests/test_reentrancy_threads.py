"""Re-entrant calls (pickling from inside a reduce method) and concurrent use from threads."""

import io
import pickle
import threading

import _importable
import cloudpickle
import pytest
from _helpers import assert_dumps_like_pickle, assert_same_bytes


class PicklesItselfInside:
    """Its ``__reduce__`` calls ``cloudpickle.dumps`` on other data (re-entrancy)."""

    def __init__(self, payload, protocol):
        self.payload = payload
        self.protocol = protocol

    def __reduce__(self):
        inner = cloudpickle.dumps(self.payload, protocol=self.protocol)
        return (pickle.loads, (inner,))


def test_reentrant_dumps_from_reduce(protocol):
    """``cloudpickle.dumps`` called from inside a ``__reduce__`` during a dump does not
    disturb the outer dump (memo, frames, output)."""
    shared = ["shared", 1]
    payload = {"inner": [1, 2, 3], "big": "x" * 70_000, "shared": shared}
    obj = [shared, PicklesItselfInside(payload, protocol), shared, PicklesItselfInside(shared, 0)]
    data = assert_dumps_like_pickle(obj, protocol)
    loaded = pickle.loads(data)
    assert loaded[1] == payload and loaded[0] is loaded[2]


def test_reentrant_pickler_from_reduce(protocol):
    """A second Pickler used from inside a reduce method keeps its own memo."""

    class UsesOtherPickler:
        def __reduce__(self):
            buf = io.BytesIO()
            other = cloudpickle.Pickler(buf, protocol)
            other.dump(shared)
            other.dump(shared)
            return (bytes, (buf.getvalue(),))

    shared = [1, 2]
    data = cloudpickle.dumps([shared, UsesOtherPickler(), shared], protocol=protocol)
    loaded = pickle.loads(data)
    ref = io.BytesIO()
    ref_pickler = pickle.Pickler(ref, protocol)
    ref_pickler.dump(shared)
    ref_pickler.dump(shared)
    assert loaded[1] == ref.getvalue()
    assert loaded[0] is loaded[2]


def test_reentrant_from_persistent_id_and_reducer_override(protocol):
    """Extension hooks may themselves call ``cloudpickle.dumps``."""

    class P(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if obj == "pid-me":
                return cloudpickle.dumps(["nested", obj], protocol=protocol).hex()
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _importable.Point):
                return (pickle.loads, (cloudpickle.dumps((obj.x, obj.y), protocol=protocol),))
            return super().reducer_override(obj)

    class Ref(pickle.Pickler):
        def persistent_id(self, obj):
            if obj == "pid-me":
                return pickle.dumps(["nested", obj], protocol=protocol).hex()
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _importable.Point):
                return (pickle.loads, (pickle.dumps((obj.x, obj.y), protocol=protocol),))
            return NotImplemented

    obj = ["pid-me", _importable.Point(1, [2]), "other"]
    buf, ref = io.BytesIO(), io.BytesIO()
    P(buf, protocol).dump(obj)
    Ref(ref, protocol).dump(obj)
    assert_same_bytes(buf.getvalue(), ref.getvalue())


def _thread_payload(seed):
    shared = [seed, str(seed)]
    return {
        "seed": seed,
        "items": [shared, shared, (seed, "x" * (seed % 7 * 10_000))],
        "point": _importable.Point(seed, shared),
        "nested": [[i, {i: str(i)}] for i in range(seed % 50)],
    }


@pytest.mark.parametrize("threads", [4])
def test_concurrent_dumps_from_threads(threads):
    """Several threads pickling different data at the same time each get pickle's bytes."""
    errors = []
    barrier = threading.Barrier(threads)

    def worker(tid):
        try:
            barrier.wait()
            for i in range(150):
                seed = tid * 1000 + i
                obj = _thread_payload(seed)
                protocol = i % 6
                data = cloudpickle.dumps(obj, protocol=protocol)
                if data != pickle.dumps(obj, protocol=protocol):
                    errors.append(f"thread {tid} iteration {i}: bytes differ")
                    return
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"thread {tid}: {type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "a pickling thread hung"
    assert errors == []


def test_concurrent_picklers_with_shared_state(protocol):
    """Threads each with their own Pickler (memo persisted across dumps) don't interfere."""
    results = {}

    def worker(tid):
        buf = io.BytesIO()
        pickler = cloudpickle.Pickler(buf, protocol)
        shared = [tid]
        for _ in range(50):
            pickler.dump([shared, tid])
        results[tid] = buf.getvalue()

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    for tid, data in results.items():
        ref = io.BytesIO()
        ref_pickler = pickle.Pickler(ref, protocol)
        shared = [tid]
        for _ in range(50):
            ref_pickler.dump([shared, tid])
        assert_same_bytes(data, ref.getvalue())
    assert len(results) == 4


def test_mutation_from_another_thread_does_not_crash():
    """Another thread mutating a big list while it is pickled: no crash, and either
    valid bytes or an exception (pickle makes no stronger promise)."""
    data = list(range(200_000))
    stop = threading.Event()

    def mutate():
        while not stop.is_set():
            data.append(len(data))
            if len(data) > 210_000:
                del data[100_000:]

    t = threading.Thread(target=mutate)
    t.start()
    try:
        for protocol in range(6):
            try:
                out = cloudpickle.dumps(data, protocol=protocol)
            except Exception:  # noqa: BLE001 - RuntimeError and such are acceptable
                continue
            assert isinstance(pickle.loads(out), list)
    finally:
        stop.set()
        t.join()
