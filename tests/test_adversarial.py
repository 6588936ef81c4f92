"""Adversarial objects: each gives a Python exception (of the type pickle
gives where pickle defines one) and leaves the process working. All cases
first run together in a child process, so that a crash (segfault, abort)
fails a test with the case's name instead of killing the test run."""

import gc
import io
import json
import os
import pickle
import subprocess
import sys

import cloudpickle
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


class LyingClass:
    """``__class__`` claims another class."""

    @property
    def __class__(self):
        return dict


class RaisingClassProperty:
    @property
    def __class__(self):
        raise RuntimeError("no class for you")


class SiblingKiller:
    """Its reducer deletes the last reference to the next item of the list
    it is in."""

    def __init__(self, holder):
        self.holder = holder

    def __reduce__(self):
        del self.holder[1:]
        return (int, (1,))


class GcTrigger:
    def __reduce__(self):
        gc.collect()
        return (list, ([1, 2, 3],))


class SetMutator:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target.add(object())
        return (int, (0,))

    def __hash__(self):
        return 1


class ReturnsSelfAsArgs:
    def __reduce__(self):
        return (ReturnsSelfAsArgs, self)


class ReturnsSelfInArgs:
    def __reduce__(self):
        return (ReturnsSelfInArgs._make, (self,))

    @staticmethod
    def _make(_):
        return ReturnsSelfInArgs()


class WriteFailsAfter:
    def __init__(self, n):
        self.n = n

    def write(self, data):
        self.n -= 1
        if self.n < 0:
            raise OSError("disk full")
        return len(data)


def _sibling_case():
    holder = [None, object(), [1, 2, 3]]
    holder[0] = SiblingKiller(holder)
    return holder


class EarlierKiller:
    """Its reducer empties the list it is in, dropping the (already written)
    items before it: tuples, and the objects only they hold."""

    def __init__(self, holder):
        self.holder = holder

    def __reduce__(self):
        del self.holder[:-1]
        gc.collect()
        return (int, (2,))


def _earlier_case():
    holder = [(([i], (str(i) * 3, [i, i])), {"k": (i,)}) for i in range(20)]
    holder.append(EarlierKiller(holder))
    return holder


def _set_case():
    target = set(range(5))
    target.add(SetMutator(target))
    return target


def _buffer_callback_raising():
    import pickle as p

    buffers = [p.PickleBuffer(bytearray(b"x" * 100)) for _ in range(5)]
    calls = []

    def callback(buf):
        calls.append(buf)
        if len(calls) == 3:
            raise ValueError("callback failed")
        return False

    return buffers, {"protocol": 5, "buffer_callback": callback}


def _deep(kind, depth=100_000):
    obj = []
    for _ in range(depth):
        obj = [obj] if kind == "list" else ({"k": obj} if kind == "dict" else (obj,))
    return obj


CASES = {
    "lying __class__": lambda: (LyingClass(), {}),
    "raising __class__": lambda: (RaisingClassProperty(), {}),
    "reducer deletes a sibling": lambda: (_sibling_case(), {}),
    "reducer deletes the items before it": lambda: (_earlier_case(), {}),
    "reducer runs gc.collect": lambda: ([GcTrigger() for _ in range(50)], {}),
    "set mutated by an item's reducer": lambda: (_set_case(), {}),
    "reduce returns self as args": lambda: (ReturnsSelfAsArgs(), {}),
    "reduce returns self in args": lambda: ([ReturnsSelfInArgs()], {}),
    "buffer_callback raises midway": _buffer_callback_raising,
    "huge int": lambda: (10**20000, {}),
    "huge negative int": lambda: (-(2**70000), {}),
    "deep list": lambda: (_deep("list"), {}),
    "deep dict": lambda: (_deep("dict"), {}),
    "deep tuple": lambda: (_deep("tuple"), {}),
}


def run(implementation, name):
    """Outcome of pickling case ``name``: ("ok", loads-equal?) or ("error",
    exception type name)."""
    obj, kwargs = CASES[name]()
    try:
        payload = implementation(obj, **kwargs)
    except Exception as exc:
        return ["error", type(exc).__name__]
    try:
        pickle.loads(payload)
    except Exception as exc:
        return ["ok-but-unloadable", type(exc).__name__]
    return ["ok", None]


def child_main():
    """Run every case in this process; print outcomes as JSON."""
    results = {}
    for name in CASES:
        results[name] = run(cloudpickle.dumps, name)
        # The process keeps working after each case.
        data = {"a": [1, 2.5, "x"], "b": (None, True)}
        assert pickle.loads(cloudpickle.dumps(data)) == data
    print(json.dumps(results))


@pytest.fixture(scope="module")
def child_outcomes():
    code = "import sys; sys.path.insert(0, sys.argv[1]); import test_adversarial; test_adversarial.child_main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, HERE], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (
        f"child crashed or failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(CASES))
def test_no_crash_and_same_exception_type_as_pickle(name, child_outcomes):
    ours = child_outcomes[name]
    assert ours == run(cloudpickle.dumps, name)  # same outcome in this process
    expected = run(pickle.dumps, name)
    if name.startswith("deep") or name == "reduce returns self in args":
        # pickle raises RecursionError; cloudpickle (this one and the
        # reference) raises PicklingError for structures too deep to pickle.
        assert expected == ["error", "RecursionError"]
        assert ours == ["error", "PicklingError"]
        return
    assert ours == expected


def test_items_written_before_a_reducer_that_frees_them():
    """Objects only a tuple or list holds are written without a memo entry
    until Python code runs; a reducer that then frees them must not change
    the payload (pickle's bytes) nor crash."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        try:
            expected = pickle.dumps(_earlier_case(), protocol=protocol)
        except Exception as exc:  # Python 3.14: the list changed size
            with pytest.raises(type(exc)):
                cloudpickle.dumps(_earlier_case(), protocol=protocol)
            continue
        assert cloudpickle.dumps(_earlier_case(), protocol=protocol) == expected


def test_write_failing_midway_in_dump():
    big = [bytes(1000) for _ in range(200)]
    with pytest.raises(OSError, match="disk full"):
        cloudpickle.dump(big, WriteFailsAfter(1), protocol=4)
    with pytest.raises(OSError, match="disk full"):
        cloudpickle.Pickler(WriteFailsAfter(0), protocol=5).dump(big)
    assert pickle.loads(cloudpickle.dumps(big)) == big


def test_persistent_id_and_reducer_override_raising_midway():
    class PidFails(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if obj == "boom":
                raise KeyError("pid")
            return None

    class OverrideFails(cloudpickle.Pickler):
        def reducer_override(self, obj):
            if callable(obj):
                raise LookupError("override")
            return super().reducer_override(obj)

    for cls, exc in ((PidFails, KeyError), (OverrideFails, LookupError)):
        with pytest.raises(exc):
            cls(io.BytesIO()).dump([1, 2, "boom", 3, lambda: 0])
    assert pickle.loads(cloudpickle.dumps([1, "boom", 3])) == [1, "boom", 3]


if __name__ == "__main__":  # pragma: no cover
    child_main()
