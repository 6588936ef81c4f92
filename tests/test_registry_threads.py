"""register_pickle_by_value / unregister from one thread while others pickle."""

import pickle
import sys
import threading

import _fbv_pkg
import cloudpickle


def test_registry_toggled_while_other_threads_pickle():
    errors = []
    payloads = []
    stop = threading.Event()

    def worker():
        try:
            while not stop.is_set():
                payloads.append(cloudpickle.dumps([_fbv_pkg.scale, {"k": [1, 2.0]}]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for t in threads:
            t.start()
        for _ in range(300):
            cloudpickle.register_pickle_by_value(_fbv_pkg)
            cloudpickle.unregister_pickle_by_value(_fbv_pkg)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(old_interval)
    assert not errors
    assert payloads
    by_value = by_reference = 0
    for payload in payloads[:: max(1, len(payloads) // 200)]:
        scale, data = pickle.loads(payload)
        assert scale(2) == 6 and data == {"k": [1, 2.0]}
        if b"_make_function" in payload:
            by_value += 1
        else:
            by_reference += 1
    # Each payload is one or the other, and every one loads and runs.
    assert by_value + by_reference > 0
    print(f"{len(payloads)} payloads: {by_value} by value, {by_reference} by reference")
    assert cloudpickle.list_registry_pickle_by_value() == set()
