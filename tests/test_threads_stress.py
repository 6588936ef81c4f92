"""Eight threads pickling shared and distinct objects by value at the same
time: every payload loads into an object that behaves like the original."""

import pickle
import threading

import cloudpickle


def make_objects(tid):
    base = tid * 100

    def closure(x):
        return x + base

    class Local:
        tags = frozenset({"a", "b", tid})

        def value(self):
            return base

    return closure, Local


SHARED_FACTOR = 3


def shared_function(x):
    return x * SHARED_FACTOR


shared_class = make_objects(-1)[1]


def test_eight_threads_pickle_by_value_concurrently():
    shared = type(shared_function)(shared_function.__code__, {"SHARED_FACTOR": 3})
    errors = []
    barrier = threading.Barrier(8)

    def worker(tid):
        try:
            closure, local = make_objects(tid)
            barrier.wait(timeout=60)
            for i in range(200):
                payload = cloudpickle.dumps([closure, local, shared, shared_class, {"i": i}])
                f, cls, g, shared_cls, data = pickle.loads(payload)
                assert f(1) == 1 + tid * 100
                assert cls().value() == tid * 100 and tid in cls.tags
                assert g(2) == 6 and shared_cls is shared_class and data == {"i": i}
        except Exception as exc:  # reported below with the thread id
            errors.append((tid, repr(exc)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a pickling thread hung"
    assert errors == []


def test_dumps_in_another_thread_while_the_tracker_id_is_minted():
    # While a class's tracker id is minted, the class is pickled once in
    # canonical form with a placeholder id. Another thread pickling the same
    # class meanwhile must not ship that placeholder: its payload must load
    # as the class itself.
    payloads = []

    class Hook:
        started = False

        def __reduce__(self):
            if not Hook.started:
                Hook.started = True
                other = threading.Thread(target=lambda: payloads.append(cloudpickle.dumps(Minted)))
                other.start()
                other.join(timeout=60)
            return (int, (0,))

    class Minted:
        hook = Hook()

    # Attribute lookups give the class a valid version tag, which makes its
    # reduction cacheable (a class without one is reduced afresh each time).
    for _ in range(3):
        Minted()
        getattr(Minted, "absent", None)
    first = cloudpickle.dumps(Minted)
    assert len(payloads) == 1
    assert pickle.loads(payloads[0]) is Minted
    assert pickle.loads(first) is Minted
