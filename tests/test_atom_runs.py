"""Runs of ints and floats inside a list (``save_atom_run`` in
src/pickler/containers.rs).

At protocols 1 and above, the engine writes the exact floats and the exact
one-digit ints of a list batch in one tight loop, stopping before any other
item and before an item at whose start the open frame is full (where
``pickle`` commits the frame). ``pickle`` is the oracle: every item size,
frames cut at every offset of a float, batches of every awkward length,
ints around the one-digit and 32-bit limits, ``bool`` and other subclasses of
``int`` and ``float``, fast paths on and off; and Python code that runs
between two runs (a reducer, a ``file.write`` at a frame commit) and
shrinks, empties, extends or rewrites the list, so that the next run must
read the list again.
"""

import io
import pickle
import random
import sys
import textwrap

import cloudpickle
import pytest
from _child_process import child_env, run_python
from cloudpickle import _engine

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
FRAME = 64 * 1024


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast_paths(request):
    prev = _engine._set_fast_paths(request.param)
    try:
        yield request.param
    finally:
        _engine._set_fast_paths(prev)


class MyInt(int):
    pass


class MyFloat(float):
    pass


def _kind(kind, n, seed=0):
    """``n`` atoms of one kind."""
    rng = random.Random(seed)
    if kind == "float":
        return [rng.random() * 1e6 - 5e5 for _ in range(n)]
    if kind == "special floats":
        pool = [
            0.0,
            -0.0,
            float("inf"),
            -float("inf"),
            float("nan"),
            5e-324,
            1.7976931348623157e308,
        ]
        return [rng.choice(pool) for _ in range(n)]
    if kind == "int8":
        return [rng.randrange(256) for _ in range(n)]
    if kind == "int16":
        return [rng.randrange(256, 65536) for _ in range(n)]
    if kind == "int32":
        return [rng.randrange(-(2**31), 2**31) for _ in range(n)]
    if kind == "digit edges":
        # One 30-bit digit or two; one byte, two, four or more.
        pool = [0, 1, -1, 255, 256, -256, 65535, 65536, -65536]
        pool += [2**30 - 1, 2**30, -(2**30 - 1), -(2**30), 2**31 - 1, 2**31, -(2**31), -(2**31) - 1]
        pool += [2**62, -(2**63), 2**63, 2**64, -(2**64), 10**30, -(10**30)]
        return [rng.choice(pool) for _ in range(n)]
    if kind == "big ints":
        return [
            rng.getrandbits(rng.choice([31, 33, 63, 65, 200, 3000])) * rng.choice([1, -1])
            for _ in range(n)
        ]
    if kind == "bools":
        return [rng.choice([True, False, 0, 1, 0.0, 1.0]) for _ in range(n)]
    if kind == "subclasses":
        return [rng.choice([MyInt(3), MyFloat(2.5), 3, 2.5, MyInt(-7)]) for _ in range(n)]
    if kind == "mixed":
        pool = [None, "s", "", b"b", (1, 2), [], {}, 2**40, True, MyInt(1), MyFloat(0.5)]
        return [
            rng.choice(pool)
            if rng.random() < 0.1
            else (rng.random() if rng.random() < 0.5 else rng.randrange(-70000, 70000))
            for _ in range(n)
        ]
    raise AssertionError(kind)


KINDS = [
    "float",
    "special floats",
    "int8",
    "int16",
    "int32",
    "digit edges",
    "big ints",
    "bools",
    "subclasses",
    "mixed",
]


def _same_as_pickle(obj, protocol):
    expected = pickle.dumps(obj, protocol)
    assert cloudpickle.dumps(obj, protocol) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", KINDS)
def test_lists_of_atoms(kind, protocol, fast_paths):
    for n in (0, 1, 2, 3, 999, 1000, 1001, 2001, 20_000):
        obj = _kind(kind, n, seed=n)
        _same_as_pickle(obj, protocol)
        # The same items inside other containers and after other items.
        _same_as_pickle({"k": obj, "t": (obj, "x")}, protocol)


@pytest.mark.parametrize("protocol", [1, 4, 5])
@pytest.mark.parametrize("kind", ["float", "int8", "int16", "int32", "mixed"])
def test_frames_cut_at_every_offset(kind, protocol, fast_paths):
    # A prefix of 0 to 8 bytes moves the frame boundary through every
    # offset of a 9-byte float (and of the shorter ints); 16,000 items cross
    # two frames of 64 KiB or more.
    items = _kind(kind, 16_000, seed=protocol)
    for shift in range(10):
        _same_as_pickle(["x" * shift, *items], protocol)
        _same_as_pickle([b"y" * (FRAME - 40 + shift), *items[:9000]], protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frames_full_right_before_a_run(protocol, fast_paths):
    # Items that end a frame exactly, or a few bytes past its target, right
    # before a run of floats; large bytes (written outside frames) between
    # runs.
    for pad in range(FRAME - 30, FRAME + 12):
        _same_as_pickle(["z" * pad, 1.5, 2, 3.5] + [0.25] * 50, protocol)
    big = [b"B" * (FRAME + 1), b"C" * FRAME, bytearray(70_000)]
    obj = []
    for blob in big:
        obj += [float(i) for i in range(3000)] + [blob]
    _same_as_pickle(obj, protocol)


class Mutate:
    """An item whose reducer changes the list that holds it."""

    def __init__(self, holder, action):
        self.holder = holder
        self.action = action

    def __reduce__(self):
        lst = self.holder[0]
        self.action(lst)
        return (str, ("m",))


ACTIONS = {
    "truncate after": lambda lst: lst.__delitem__(slice(lst.index("here") + 2, None)),
    "truncate before": lambda lst: lst.__delitem__(slice(0, 500)),
    "clear": lambda lst: lst.clear(),
    "extend floats": lambda lst: lst.extend([0.5 * i for i in range(5000)]),
    "extend ints": lambda lst: lst.extend(range(-2000, 70_000, 7)),
    "insert front": lambda lst: lst.insert(0, 7.25),
    "replace later": lambda lst: lst.__setitem__(
        slice(lst.index("here") + 1, None), ["s", True, 2**70, MyFloat(1.0)] * 400
    ),
    "later become floats": lambda lst: lst.__setitem__(
        slice(lst.index("here") + 1, None), [1.0] * (len(lst) - lst.index("here") - 1)
    ),
    "append": lambda lst: lst.append(3),
}


def _mutating_list(action, position, kind):
    holder = [None]
    items = _kind(kind, 3500, seed=position)
    items.insert(position, "here")
    items.insert(position + 1, Mutate(holder, ACTIONS[action]))
    holder[0] = items
    return items


def _outcome(dumps, make, protocol):
    try:
        return ("ok", dumps(make(), protocol))
    except RuntimeError as e:  # Python 3.14+: the list changed size
        return ("error", type(e), str(e))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_reducer_changes_the_list(action, protocol, fast_paths):
    for position in (0, 1, 998, 999, 1000, 1500, 3400):
        for kind in ("float", "mixed"):

            def make():
                return _mutating_list(action, position, kind)

            assert _outcome(cloudpickle.dumps, make, protocol) == _outcome(
                pickle.dumps, make, protocol
            ), (position, kind)


class Chunks:
    """A file that records what it is given, and may change a list on a
    chosen call of ``write`` (Python code run at a frame commit, in the
    middle of the list)."""

    def __init__(self, target=None, on_call=None, action=None):
        self.chunks = []
        self.target = target
        self.on_call = on_call
        self.action = action

    def write(self, data):
        self.chunks.append(bytes(data))
        if self.target is not None and len(self.chunks) == self.on_call:
            self.action(self.target)


FILE_ACTIONS = {
    "none": None,
    "halve": lambda lst: lst.__delitem__(slice(len(lst) // 2, None)),
    "clear": lambda lst: lst.clear(),
    "extend": lambda lst: lst.extend([2.5] * 20_000),
    "rewrite": lambda lst: lst.__setitem__(slice(None), ["a", 1, 2.0, 2**40] * 3000),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("action", list(FILE_ACTIONS))
def test_file_writes_between_runs(action, protocol, fast_paths):
    def run(dump):
        obj = _kind("mixed", 40_000, seed=protocol)
        f = Chunks(obj, 1, FILE_ACTIONS[action]) if FILE_ACTIONS[action] else Chunks()
        try:
            dump(obj, f)
        except RuntimeError as e:  # Python 3.14+: the list changed size
            return ("error", str(e), f.chunks)
        return ("ok", f.chunks)

    expected = run(lambda obj, f: pickle.dump(obj, f, protocol))
    assert run(lambda obj, f: cloudpickle.dump(obj, f, protocol)) == expected
    assert run(lambda obj, f: cloudpickle.Pickler(f, protocol).dump(obj)) == expected


class FloatPid(cloudpickle.Pickler):
    """persistent_id for some floats: the runs are off, every item goes
    through the hook."""

    def persistent_id(self, obj):
        if type(obj) is float and obj == 0.5:
            return "half"
        return None


@pytest.mark.skipif(
    sys.implementation.name == "pypy",
    reason="PyPy's pickle.Pickler is pickle.py, which also calls persistent_id on "
    "each persistent id it saves; the engine follows _pickle.c, which does not",
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_id_sees_every_atom(protocol, fast_paths):
    obj = [0.5, 1, 0.25, 0.5, 300] * 3000
    for cls in (FloatPid,):
        seen_ours, seen_pickle = [], []

        class Ours(cls):
            def persistent_id(self, o):
                seen_ours.append(o)
                return super().persistent_id(o)

        class Theirs(pickle.Pickler):
            def persistent_id(self, o):
                seen_pickle.append(o)
                return FloatPid.persistent_id(self, o)

        got, expected = io.BytesIO(), io.BytesIO()
        Ours(got, protocol).dump(obj)
        Theirs(expected, protocol).dump(obj)
        assert got.getvalue() == expected.getvalue()
        assert seen_ours == seen_pickle


@pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="CPython 3.9's pickle reads freed list items in these cases: no oracle",
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_items_freed_between_runs_debug_allocator(protocol):
    # The reducer drops the list's floats (only the list holds them) and
    # collects: the next run must see the list as it is now. CPython's
    # debug allocator overwrites freed memory, so a stale read shows.
    source = f"""
        import gc, pickle, cloudpickle

        class Cut:
            def __init__(self, keep, refill):
                self.keep, self.refill = keep, refill
            def __reduce__(self):
                del holder[self.keep:]
                gc.collect()
                holder.extend(self.refill)
                return (str, ("c",))

        def make(keep, refill):
            global holder
            holder = [float(i) + 0.5 for i in range(2500)]
            holder[1200] = Cut(keep, refill)
            return holder

        cases = [(1201, []), (1201, [1.25] * 3000), (1700, []), (1700, [3] * 9), (600, []), (600, [7] * 3000), (0, [2.5])]
        for keep, refill in cases:
            outcomes = []
            for dumps in (pickle.dumps, cloudpickle.dumps):
                try:
                    outcomes.append(dumps(make(keep, refill), {protocol}))
                except RuntimeError as e:
                    outcomes.append(str(e))
            assert outcomes[0] == outcomes[1], (keep, len(refill))
        print("ok")
    """
    env = child_env()
    env["PYTHONMALLOC"] = "debug"
    assert run_python(["-c", textwrap.dedent(source)], env=env).decode().strip() == "ok"


@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
def test_payloads_around_the_streamed_copy(protocol, fast_paths):
    # Results of 4 MiB and more are copied out of the engine's buffer with
    # non-temporal stores (src/pickler/output.rs, STREAM_MIN): sizes around
    # it, at every alignment, with deferred bytes objects among the atoms.
    n = (4 << 20) // 9
    floats = [i + 0.5 for i in range(n + 8)]
    for extra in (-9, 0, 1, 2, 3, 5, 7, 8):
        _same_as_pickle(["x" * (extra % 9), *floats[: n + extra]], protocol)
    blobs = [bytes([i % 251]) * (600 + i) for i in range(40)]
    obj = []
    for blob in blobs:
        obj += floats[:12_000] + [blob]
    _same_as_pickle(obj, protocol)
