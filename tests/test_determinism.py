"""Payloads of functions, classes and dynamic modules are a function of
their definition only: the same bytes in every process, under every
PYTHONHASHSEED, and on every dumps call."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DEFS = os.path.join(HERE, "_determinism_defs.py")
SEEDS = ("0", "1", "12345", "random")


def _run(code_or_path, seed, *args, script=True):
    env = dict(os.environ, PYTHONHASHSEED=seed)
    env.pop("PYTHONPATH", None)
    cmd = [sys.executable, code_or_path, *args] if script else [sys.executable, "-c", code_or_path]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=HERE)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module", params=[2, 4, 5], ids=lambda p: f"protocol{p}")
def payloads_by_seed(request):
    protocol = str(request.param)
    return {seed: json.loads(_run(DEFS, seed, protocol)) for seed in SEEDS}


def test_same_bytes_under_every_hash_seed(payloads_by_seed):
    reference = payloads_by_seed["0"]
    assert len(reference) >= 20
    differing = sorted(
        name
        for name, payload in reference.items()
        for seed, payloads in payloads_by_seed.items()
        if payloads[name] != payload
    )
    assert differing == []


def test_set_heavy_payloads_really_contain_sets(payloads_by_seed):
    # The check above is only meaningful if the payloads hold sets whose
    # natural order varies with the seed.
    data = bytes.fromhex(payloads_by_seed["0"]["class_with_sets"])
    assert b"x1" in data and b"x5" in data
    assert pickle.EMPTY_SET in data or pickle.FROZENSET in data or b"frozenset" in data


LOADER = textwrap.dedent(
    """
    import json, sys, dataclasses, typing, cloudpickle
    payloads = json.loads(sys.stdin.read())
    objs = {name: cloudpickle.loads(bytes.fromhex(p)) for name, p in payloads.items()}
    assert "__main__" not in sys.modules or not hasattr(sys.modules["__main__"], "WithSets")
    assert objs["lambda"]("d2") and not objs["lambda"]("zz")
    assert objs["set_constant"]("cyan") and not objs["set_constant"]("black")
    assert objs["globals"]("gamma") and objs["globals"]("v2") and objs["globals"]((1, "one"))
    assert objs["closure"]("four") and objs["closure"]("e") and not objs["closure"]("f")
    assert objs["set_default"]("q") and objs["set_default"]("u")
    assert objs["recursive"](5) == 120
    assert list(objs["generator"]({"a1", "a3", "b"})) == ["a1", "a3"]
    cls = objs["class_with_sets"]
    assert cls.tags == {"x1", "x2", "x3", "x4", "x5"} and cls.frozen == {"k1", "k2", "k3"}
    assert cls.nested == (frozenset({"n1", "n2"}), [{"m1", "m2", "m3"}])
    assert cls.build().size == 5 and cls().method() == cls.tags | cls.frozen
    assert isinstance(objs["instance"], cls)
    assert set(objs["slots"].__slots__) == {"first", "second", "third"}
    sq = objs["abc"]()
    assert sq.area() == 4 and objs["abc"].__mro__[1].__abstractmethods__ == frozenset(
        {"area", "perimeter", "name"})
    color = objs["enum"]
    assert [m.value for m in color] == ["r", "g", "b"] and objs["enum_member"] is color.GREEN
    assert color.RED.describe() == "RED in ['b', 'g', 'r']"
    assert objs["flag"](3) == objs["flag"].READ | objs["flag"].WRITE
    point = objs["dataclass"]
    assert [f.name for f in dataclasses.fields(point)] == ["x", "y", "labels", "extra"]
    assert point().labels == frozenset({"l1", "l2", "l3", "l4"})
    assert point.__doc__.startswith("Point(x: int = 0")
    assert objs["dataclass_instance"] == point(3, 4)
    assert objs["typeddict"].__optional_keys__ == frozenset({"title", "year", "rating"})
    assert objs["generic"](3).item == 3 and objs["generic_alias"].__args__ == (int,)
    assert objs["typevar"].__bound__ is int
    assert objs["namedtuple"](1, 2).right == 2
    node = objs["mutual"]().make()
    assert type(node.peer).kinds == {"leaf", "terminal", "end"}
    assert objs["module"].lookup("m3") and objs["module"].lookup("z2")
    everything = objs["everything"]
    # A separate payload, same tracker ids: the very same classes.
    assert everything[1] is cls and everything[2] is color and everything[3] is point
    print("ok")
    """
)


def test_payloads_load_into_equivalent_objects(payloads_by_seed):
    # Loaded in a process that does not define anything, under another seed.
    env = dict(os.environ, PYTHONHASHSEED="777")
    proc = subprocess.run(
        [sys.executable, "-c", LOADER],
        input=json.dumps(payloads_by_seed["random"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


FACTORY = textwrap.dedent(
    """
    import cloudpickle, sys
    def factory(value):
        class Made:
            def get(self):
                return value
        return Made
    a, b, c = factory(1), factory(1), factory(2)
    ids = [cloudpickle.cloudpickle._get_or_create_tracker_id(k) for k in (a, b, c)]
    print(" ".join(ids))
    sys.stdout.write(cloudpickle.dumps([a, b, c]).hex())
    """
)


def test_tracker_ids_are_stable_and_distinct():
    runs = [_run(FACTORY, seed, script=False).splitlines() for seed in ("1", "2")]
    ids = [run[0].split() for run in runs]
    assert ids[0] == ids[1]
    # Two live classes with identical definitions still get distinct ids,
    # and a different captured value gives a different id.
    assert len(set(ids[0])) == 3
    assert runs[0][1] == runs[1][1]
    a, b, c = pickle.loads(bytes.fromhex(runs[0][1]))
    assert a is not b and a is not c
    assert (a().get(), b().get(), c().get()) == (1, 1, 2)
    # Loading the same payload again yields the same classes.
    again = pickle.loads(bytes.fromhex(runs[1][1]))
    assert again[0] is a and again[1] is b and again[2] is c


def test_tracker_id_survives_a_round_trip():
    class Local:
        values = {"a", "b", "c"}

    tracker = cloudpickle.cloudpickle._get_or_create_tracker_id(Local)
    assert len(tracker) == 32 and tracker != "0" * 32
    loaded = pickle.loads(cloudpickle.dumps(Local))
    assert loaded is Local
    assert cloudpickle.cloudpickle._get_or_create_tracker_id(Local) == tracker


def test_repeated_dumps_in_one_process_agree():
    def make():
        marks = frozenset({"one", "two", "three"})
        return lambda x: x in marks

    class Local:
        tags = {"t1", "t2", "t3", "t4"}

    f = make()
    assert cloudpickle.dumps(f) == cloudpickle.dumps(f)
    assert cloudpickle.dumps(Local) == cloudpickle.dumps(Local)


def test_plain_sets_keep_pickles_order():
    # Ordinary data stays byte-identical with pickle: no sorting cost.
    data = {"zeta", "alpha", "mid", "omega", "beta"}
    for protocol in range(6):
        assert cloudpickle.dumps(data, protocol) == pickle.dumps(data, protocol)
        frozen = frozenset(data)
        assert cloudpickle.dumps(frozen, protocol) == pickle.dumps(frozen, protocol)


def test_sets_under_a_by_value_reduction_are_sorted():
    marks = {"delta", "alpha", "charlie", "bravo"}
    numbers = frozenset({10, 3, 7, -2})

    def f():
        return marks, numbers

    data = cloudpickle.dumps(f)
    positions = [data.index(word.encode()) for word in ("alpha", "bravo", "charlie", "delta")]
    assert positions == sorted(positions)
    loaded = pickle.loads(data)
    assert loaded() == (marks, numbers)


def test_mixed_sets_are_ordered_by_their_items_pickles():
    mixed = frozenset({3, "three", b"three", (3,), None, 2.5, frozenset({1, 2})})
    # Equal sets whose items were inserted in another order.
    rebuilt = frozenset(reversed(list(mixed)))

    def make(value):
        return lambda: value

    first = cloudpickle.dumps(make(mixed))
    assert pickle.loads(first)() == mixed
    assert cloudpickle.dumps(make(rebuilt)) == first


def test_canonical_dumps_rejects_bad_protocol():
    with pytest.raises(ValueError):
        cloudpickle._engine._canonical_dumps({1, 2}, 9)


def test_class_only_a_custom_pickler_handles_gets_a_random_id():
    import collections
    import io

    class Opaque:
        def __reduce__(self):
            raise TypeError("not picklable by default")

    class Holder:
        thing = Opaque()

    class Custom(cloudpickle.Pickler):
        def __init__(self, file):
            super().__init__(file)
            self.dispatch_table = collections.ChainMap(
                {Opaque: lambda obj: (Opaque, ())}, cloudpickle.Pickler.dispatch_table
            )

    buf = io.BytesIO()
    Custom(buf).dump(Holder)
    loaded = pickle.loads(buf.getvalue())
    assert loaded is Holder
    tracker = cloudpickle.cloudpickle._get_or_create_tracker_id(Holder)
    assert len(tracker) == 32


# The minting rule the engine implements (src/pickler/tracker_id.rs),
# written out here as an oracle: the id is blake2b(digest_size=16) of the
# canonical pickle, the class standing under the placeholder id while its
# own digest runs, and "{digest}:{n}" digested again for the n-th live class
# with an identical pickle. The engine's class reduction mints ids with the
# engine's own function, so the oracle mints first: it records a class
# under the placeholder while it computes the digest (the engine's
# reduction then finds that id), then under the oracle's id. Classes the
# canonical pickle reaches that have no id yet get theirs from the engine,
# with the class the oracle is minting standing under the placeholder for
# them too, as in the engine's own nested minting. Each run in a process of
# its own.
ORACLE = textwrap.dedent(
    """
    import hashlib
    from cloudpickle import _engine, _reconstructors as r

    def oracle(cls):
        with r._DYNAMIC_CLASS_TRACKER_LOCK:
            known = r._DYNAMIC_CLASS_TRACKER_BY_CLASS.get(cls)
            if known is not None:
                return known
            r._DYNAMIC_CLASS_TRACKER_BY_CLASS[cls] = _engine._PLACEHOLDER_TRACKER_ID
        try:
            data = _engine._canonical_dumps(cls, 5)
        finally:
            with r._DYNAMIC_CLASS_TRACKER_LOCK:
                del r._DYNAMIC_CLASS_TRACKER_BY_CLASS[cls]
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        with r._DYNAMIC_CLASS_TRACKER_LOCK:
            tracker_id, n = digest, 0
            while r._DYNAMIC_CLASS_TRACKER_BY_ID.get(tracker_id) not in (None, cls):
                n += 1
                text = f"{digest}:{n}".encode()
                tracker_id = hashlib.blake2b(text, digest_size=16).hexdigest()
            r._DYNAMIC_CLASS_TRACKER_BY_CLASS[cls] = tracker_id
            r._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] = cls
            return tracker_id

    mint = oracle
    """
)

CLASSES = textwrap.dedent(
    """
    import dataclasses, enum, sys, typing
    import cloudpickle

    class Node:
        def make(self):
            return Node(Leaf())

    class Leaf(Node):
        kinds = {"leaf", "terminal", "end"}

    class Color(enum.Enum):
        RED = 1
        GREEN = 2

        def other(self):
            return Color.GREEN

    @dataclasses.dataclass
    class Point:
        x: int = 0
        tags: frozenset = frozenset({"b", "a", "c"})

    def factory(value):
        class Made:
            def get(self):
                return value, Made
        return Made

    made = [factory(1), factory(1), factory(1), factory(2)]
    ids = [mint(c) for c in (Node, Leaf, Color, Point, *made)]
    # Payloads too: the classes the ones above reach get their ids there.
    payload = cloudpickle.dumps([Node, Leaf, Color, Point, made], protocol=5)
    print(" ".join(ids), payload.hex())
    """
)


def test_tracker_ids_follow_the_minting_rule():
    # The same source in both processes (line numbers are in the code
    # objects), the oracle minting in one only.
    install = "mint = oracle"
    assert install in ORACLE
    engine = _run(
        ORACLE.replace(install, "mint = _engine._get_or_create_tracker_id") + CLASSES,
        "1",
        script=False,
    )
    oracle = _run(ORACLE + CLASSES, "2", script=False)
    assert engine == oracle
    ids = engine.split()[:-1]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)


def test_tracker_id_minting_is_the_engines():
    from cloudpickle import _engine

    cp = cloudpickle.cloudpickle
    for name in ("_get_or_create_tracker_id", "_definition_digest", "_PLACEHOLDER_TRACKER_ID"):
        assert getattr(cp, name) is getattr(_engine, name), name
    assert _engine._PLACEHOLDER_TRACKER_ID == "0" * 32


def test_definition_digest():
    import hashlib
    import uuid

    class Local:
        tags = {"x", "y"}

    expected = hashlib.blake2b(
        cloudpickle._engine._canonical_dumps(Local, 5), digest_size=16
    ).hexdigest()
    assert cloudpickle.cloudpickle._definition_digest(Local) == expected

    class Refuses:
        def __reduce__(self):
            raise TypeError("cannot pickle Refuses objects")

    class Unpicklable:
        thing = Refuses()

    # A random id, as uuid4().hex, when the default pickler fails.
    first = cloudpickle.cloudpickle._definition_digest(Unpicklable)
    second = cloudpickle.cloudpickle._definition_digest(Unpicklable)
    assert first != second
    for random_id in (first, second):
        assert uuid.UUID(hex=random_id).version == 4
        assert uuid.UUID(hex=random_id).hex == random_id


def test_tracker_id_of_a_class_whose_reduction_interrupts():
    # Not an error of the pickler (KeyboardInterrupt...): it propagates
    # rather than giving the class a random id, and nothing is recorded.
    class Stop(BaseException):
        pass

    class Interrupting:
        def __reduce__(self):
            raise Stop

    class Local:
        thing = Interrupting()

    with pytest.raises(Stop):
        cloudpickle.cloudpickle._get_or_create_tracker_id(Local)
    from cloudpickle import _reconstructors

    assert Local not in _reconstructors._DYNAMIC_CLASS_TRACKER_BY_CLASS
    # The tracker lock was released.
    assert not _reconstructors._DYNAMIC_CLASS_TRACKER_LOCK.locked()
