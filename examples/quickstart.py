"""Quick start: cloudpickle.dumps / cloudpickle.loads.

Run from the repository root after ``pip install .``:

    python examples/quickstart.py

It pickles builtin data and an instance of an ordinary class, checks that the
payloads are byte-identical to the standard ``pickle.dumps`` (at the same
protocol) and load back with ``pickle.loads``, then times ``cloudpickle.dumps``
against ``pickle.dumps`` on a nested dict.
"""

import pickle
import sys
import timeit

import cloudpickle
from geometry import Point  # examples/geometry.py: an ordinary importable module

PROTOCOL = cloudpickle.DEFAULT_PROTOCOL  # pickle.HIGHEST_PROTOCOL


def show(title, obj):
    payload = cloudpickle.dumps(obj)
    restored = cloudpickle.loads(payload)  # the same function as pickle.loads
    assert restored == obj, (restored, obj)
    same = payload == pickle.dumps(obj, protocol=PROTOCOL)
    print(f"{title:<28} {len(payload):>6} bytes   identical to pickle.dumps: {same}")
    return same


def best_time(func, number):
    return min(timeit.repeat(func, number=number, repeat=5)) / number


def main():
    print(
        f"cloudpickle {cloudpickle.__version__}, protocol {PROTOCOL}, "
        f"Python {sys.version.split()[0]}"
    )
    assert cloudpickle.loads is pickle.loads

    data = {
        "ints": [1, 2, 3, 2**70],
        "floats": (0.5, float("inf")),
        "text": "h\u00e9llo w\u00f6rld",
        "bytes": b"\x00\x01\x02",
        "nested": {"set": {1, 2, 3}, "none": None, "flags": [True, False]},
    }
    point = Point(3, 4, "p")

    print()
    all_same = show("builtin data", data)
    all_same &= show("an instance (Point)", point)
    all_same &= show("a list of 1,000 Points", [Point(i, -i) for i in range(1000)])
    loaded = cloudpickle.loads(cloudpickle.dumps(point))
    print(f"Point loaded back: {loaded!r}, norm {loaded.norm()}")

    # What pickle cannot do: a closure and a class defined here, by value.
    offset = 10

    def shifted(x):
        return x + offset

    class Counter:
        def __init__(self):
            self.n = 0

        def bump(self):
            self.n += 1
            return self.n

    payload = cloudpickle.dumps([shifted, Counter])
    f, cls = pickle.loads(payload)
    print(
        f"closure and class by value: {len(payload)} bytes, f(5) = {f(5)}, "
        f"{cls.__name__}().bump() = {cls().bump()}"
    )

    nested = {f"key{i}": [i, i / 2, f"value {i}", (i, -i)] for i in range(20_000)}
    t_cloud = best_time(lambda: cloudpickle.dumps(nested), number=10)
    t_pickle = best_time(lambda: pickle.dumps(nested, protocol=PROTOCOL), number=10)
    print()
    print("dumps of a dict of 20,000 small lists (best of 5):")
    print(f"  cloudpickle.dumps  {t_cloud * 1e3:8.2f} ms")
    print(f"  pickle.dumps       {t_pickle * 1e3:8.2f} ms")
    print(f"  ratio cloudpickle / pickle: {t_cloud / t_pickle:.2f}")

    if not all_same:
        print("\nerror: a payload differs from pickle.dumps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
