"""Code objects written from recorded opcodes (src/pickler/fragment.rs).

The engine records the bytes of a code object's arguments the first time it
writes them, and copies them on later calls when the result cannot differ.
Each test compares the payload of ``cloudpickle.dumps`` (recorded or
replayed) with the payload of the engine's normal path, taken with a
``persistent_id`` that returns None (which turns recording off without
changing the bytes, as with pickle), and loads the payload.
"""

import io
import pickle

import cloudpickle
import pytest


class NormalPathPickler(cloudpickle.Pickler):
    def persistent_id(self, obj):
        return None


def normal_path(obj, protocol):
    buf = io.BytesIO()
    NormalPathPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def make_functions():
    scale = 3

    def plain(x):
        return x * scale + 1.5

    def names(a, b=2, *rest, key="k", **extra):
        total = a + b + len(rest) + len(extra)
        return (total, key, "constant", b"bytes", None, True, 2**70, (1, ("nested", 2.5)))

    def empty_tables():
        return ()

    def big_constant():
        return "x" * 3 + "y" * 2000

    def comprehension(xs):
        return [x * scale for x in xs]

    def frozenset_constants(x):
        # Compiled to frozenset constants: strings, ints, then a mix (in
        # canonical order by their pickles), and a tuple holding one.
        return (
            (x in {"alpha", "beta", "gamma"})
            + (x in {3, 1, 2, 10**30})
            + (x in {1, "one", b"uno", 1.5, (2, "two"), None})
            + len(((x, "tail"), frozenset({"delta", "epsilon"})))
        )

    def frozenset_sharing_a_name(alpha):
        # "alpha" is both a constant's item and a local name: it occurs
        # twice in the arguments, which are then written the normal way.
        return alpha in {"alpha", "omega"}

    return [
        plain,
        names,
        empty_tables,
        big_constant,
        comprehension,
        frozenset_constants,
        frozenset_sharing_a_name,
        lambda q: q - scale,
    ]


FUNCTIONS = make_functions()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__name__)
def test_repeated_dumps_match_the_normal_path(func, protocol):
    expected = normal_path(func, protocol)
    for _ in range(3):
        payload = cloudpickle.dumps(func, protocol=protocol)
        assert payload == expected
    loaded = pickle.loads(payload)
    assert loaded.__code__.co_code == func.__code__.co_code


@pytest.mark.parametrize("protocol", [4, 5])
def test_objects_already_in_the_memo_are_referenced(protocol):
    func = FUNCTIONS[1]
    code = func.__code__
    cloudpickle.dumps(func, protocol=protocol)  # recorded
    # Objects of the code's arguments written before the function: the
    # payload must refer back to them, not copy the recorded bytes.
    for prefix in (code.co_varnames, code.co_names, code.co_consts, code.co_name, code.co_code):
        obj = [prefix, func]
        payload = cloudpickle.dumps(obj, protocol=protocol)
        assert payload == normal_path(obj, protocol)
        loaded = pickle.loads(payload)
        assert loaded[0] == prefix
        assert loaded[1](1) == func(1)


@pytest.mark.parametrize("protocol", [4, 5])
def test_functions_sharing_names_in_one_payload(protocol):
    def first(alpha, beta):
        return alpha + beta

    def second(alpha, beta):
        return alpha - beta

    expected = {"first": 8, "second": 2}
    for obj in ([first, second], [second, first], [first, first], [second, [first, second]]):
        cloudpickle.dumps(obj, protocol=protocol)
        payload = cloudpickle.dumps(obj, protocol=protocol)
        assert payload == normal_path(obj, protocol)
        loaded = pickle.loads(payload)
        flat = loaded[:1] + (loaded[1] if isinstance(loaded[1], list) else loaded[1:])
        assert [f(5, 3) for f in flat] == [expected[f.__name__] for f in flat]


@pytest.mark.parametrize("protocol", [4, 5])
def test_frame_boundaries_around_the_code(protocol):
    func = FUNCTIONS[1]
    cloudpickle.dumps(func, protocol=protocol)
    # Put the code's arguments across the 64 KiB frame target at many
    # offsets: frames must be committed exactly where the normal path
    # commits them.
    base = 64 * 1024 - 1200
    for offset in range(0, 1400, 37):
        obj = ["z" * (base + offset), func]
        payload = cloudpickle.dumps(obj, protocol=protocol)
        assert payload == normal_path(obj, protocol), offset
        assert pickle.loads(payload)[1](2) == func(2)


@pytest.mark.parametrize("protocol", [4, 5])
def test_pickler_with_a_memo_across_dumps(protocol):
    func = FUNCTIONS[0]
    other = FUNCTIONS[1]
    cloudpickle.dumps(func, protocol=protocol)

    def stream(pickler_class):
        buf = io.BytesIO()
        pickler = pickler_class(buf, protocol=protocol)
        sizes = []
        for obj in (func, other, func, [other, func]):
            pickler.dump(obj)
            sizes.append(buf.tell())
        return buf.getvalue(), sizes

    assert stream(cloudpickle.Pickler) == stream(NormalPathPickler)


@pytest.mark.parametrize("protocol", [4, 5])
def test_dump_to_a_file(protocol):
    func = FUNCTIONS[1]
    obj = [b"q" * 70_000, func, "w" * 64_000, func.__code__, FUNCTIONS[0]]
    cloudpickle.dumps(obj, protocol=protocol)
    buf = io.BytesIO()
    cloudpickle.dump(obj, buf, protocol=protocol)
    assert buf.getvalue() == normal_path(obj, protocol)
    assert pickle.loads(buf.getvalue())[1](1) == func(1)


def test_code_objects_on_their_own():
    for func in FUNCTIONS:
        code = func.__code__
        first = cloudpickle.dumps(code)
        again = cloudpickle.dumps(code)
        assert first == again == normal_path(code, pickle.HIGHEST_PROTOCOL)
        assert pickle.loads(again) == code


def test_each_code_object_is_reduced_once():
    # The reduction (with its "<dynamic-code>" file name) is made once per
    # code object and kept with the code object: later dumps calls, recorded
    # or not, reuse it. Seen through the file-name strings: each reduction
    # makes a new one, which a persistent_id hook (called on every object
    # the engine saves) sees.
    file_names = {}

    class FileNameSpy(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if type(obj) is str and obj == "<dynamic-code>":
                file_names[id(obj)] = obj  # held: ids stay distinct
            return None

    def spied(obj):
        buf = io.BytesIO()
        FileNameSpy(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buf.getvalue()

    def outer(y):
        def inner(x):
            return x + y

        return inner

    for _ in range(5):
        assert b"<dynamic-code>" in cloudpickle.dumps(outer)
        assert b"<dynamic-code>" in spied(outer)
    # outer's code, and inner's (a constant of outer's code).
    assert len(file_names) == 2
    loaded = pickle.loads(cloudpickle.dumps(outer))
    assert loaded(1)(2) == 3 and loaded.__code__.co_filename == "<dynamic-code>"


@pytest.mark.parametrize("protocol", [4, 5])
def test_frozenset_constants_replayed_in_other_payloads(protocol):
    """The frozenset constants' items written elsewhere first (the payload
    refers back to them), or their function twice, or the code object on
    its own: the normal path's bytes every time."""
    func = next(f for f in FUNCTIONS if f.__name__ == "frozenset_constants")
    cloudpickle.dumps(func, protocol=protocol)  # recorded
    for obj in (
        func,
        [func, func],
        ["gamma", func],
        [b"uno", func],
        [frozenset({"delta", "epsilon"}), func],
        [func.__code__, func],
        func.__code__,
        {"k": (func, "alpha")},
    ):
        payload = cloudpickle.dumps(obj, protocol=protocol)
        assert payload == normal_path(obj, protocol)
        assert cloudpickle.dumps(obj, protocol=protocol) == payload
        pickle.loads(payload)
    loaded = pickle.loads(cloudpickle.dumps(func, protocol=protocol))
    for x in ("beta", 2, 10**30, "one", b"uno", 1.5, (2, "two"), None, "zzz"):
        assert loaded(x) == func(x)
