"""Objects the engine reads through its containers stay alive while Python
code runs.

The engine reads list items, dict entries, tuple items, instance dicts,
slot values and the type of the object being saved as borrowed pointers. Python code can run while one of them is
being saved (its reducer, ``reducer_override``, ``persistent_id``, a
``file.write`` called when a full frame is flushed) and can remove it from
its container, dropping the container's reference. Each case below does
that, and checks that the payload (or the exception) is the one ``pickle``
gives for the same input.

A freed object is often still readable, so each case runs in a child
process with ``PYTHONMALLOC=debug``: CPython's debug allocator overwrites
freed memory, so that reading a freed object gives a wrong value or a
crash instead of the old value.
"""

import pickle
import sys
import textwrap

import pytest
from _child_process import child_env, run_python

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)

# CPython 3.9's C pickler itself saves list items without holding a
# reference (fixed in 3.10): it crashes or writes freed data in these cases,
# and its pure-Python pickler stops early when a list is emptied, so 3.9 has
# no oracle for them.
# From 3.14 on, pickle raises RuntimeError ("list changed size during
# iteration") when the list it is writing changes size, and the engine does
# the same: both give that error, which `check` compares.
LIST_EMPTIED_OUTCOME = "error" if sys.version_info >= (3, 14) else "ok"

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="CPython 3.9's pickle reads freed list items in these cases: no oracle",
)


def run_child(source):
    """Run ``source`` in a child interpreter with the debug allocator; fail
    the test if it crashes or exits with an error."""
    env = child_env()
    env["PYTHONMALLOC"] = "debug"
    return run_python(["-c", textwrap.dedent(source)], env=env).decode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("layout", ["alone", "middle", "last"])
def test_item_whose_reducer_removes_it_and_fails(protocol, layout):
    # The item's reducer empties the list holding it, then fails: the
    # engine's reference is the last one, and the failure trail names the
    # item after its save has failed.
    out = run_child(
        f"""
        import pickle, cloudpickle

        class Removed:
            def __reduce__(self):
                holder.clear()
                del self  # no frame of the traceback keeps it alive
                raise ValueError("reducer failed")

        def make():
            global holder
            holder = {{
                "alone": lambda: [Removed()],
                "middle": lambda: [1, "a", Removed(), 2.5, "b"],
                "last": lambda: [1, 2, Removed()],
            }}[{layout!r}]()
            return [holder]

        for dumps in (pickle.dumps, cloudpickle.dumps):
            for _ in range(20):
                try:
                    dumps(make(), {protocol})
                except ValueError as e:
                    notes = "".join(getattr(e, "__notes__", None) or [str(e)])
                    assert "reducer failed" in str(e), e
                    if dumps is cloudpickle.dumps:
                        assert "Removed object" in notes, notes
                else:
                    raise AssertionError("no error from " + dumps.__module__)
                junk = [object() for _ in range(100)]
        print("ok")
        """
    )
    assert out.strip() == "ok"


FILE_WRITER = """
import pickle, sys, cloudpickle

if sys.implementation.name == "pypy":
    # As in the test process (conftest.py): the oracle is what CPython's C
    # pickler writes, not PyPy's pickle.py batching.
    from _cpython_pickle import install

    install()

class Writer:
    '''Records what is written; its first call runs `hook`.'''
    def __init__(self, hook):
        self.chunks, self.hook = [], hook

    def write(self, data):
        self.chunks.append(bytes(data))
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
            # Allocate over what the hook freed.
            self.junk = [float(-i) - 0.25 for i in range(40_000)]
            self.more = [-(i + 10**6) for i in range(40_000)]
        return len(data)

def dump_with(dump, make, protocol):
    obj, hook = make()
    writer = Writer(hook)
    try:
        dump(obj, writer, protocol)
    except Exception as e:
        return ("error", type(e).__name__)
    return ("ok", b"".join(writer.chunks))

def check(make, protocol):
    expected = dump_with(pickle.dump, make, protocol)
    actual = dump_with(cloudpickle.dump, make, protocol)
    if expected != actual:
        if expected[0] == actual[0] == "ok":
            e, a = pickle.loads(expected[1]), pickle.loads(actual[1])
            raise AssertionError(f"payloads differ: {len(e)} vs {len(a)} items")
        raise AssertionError(f"{expected!r:.200} != {actual!r:.200}")
    print(expected[0])
"""


# Enough items of each kind to fill a 64 KiB frame well before the end.
LIST_MAKERS = {
    "floats": "[float(i) + 0.5 for i in range(30_000)]",
    "ints": "[i * 1000 + 10**6 for i in range(30_000)]",
    "small ints": "[i % 200 for i in range(70_000)]",
    "big ints": "[10**30 + i for i in range(10_000)]",
    "mixed": "[(i * 7 + 10**6) if i % 2 else i * 0.5 for i in range(30_000)]",
    "strs": "[f'item {i}' for i in range(10_000)]",
}


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("kind", sorted(LIST_MAKERS))
def test_file_write_empties_the_list_being_pickled(protocol, kind):
    # The first full frame is handed to file.write, which empties the list
    # between the engine reading an item and writing it.
    out = run_child(
        FILE_WRITER
        + f"""
def make():
    items = {LIST_MAKERS[kind]}
    return items, items.clear

check(make, {protocol})
"""
    )
    assert out.strip() == LIST_EMPTIED_OUTCOME


@pytest.mark.parametrize("protocol", [4, 5])
def test_file_write_empties_a_nested_list(protocol):
    out = run_child(
        FILE_WRITER
        + f"""
def make():
    inner = [float(i) + 0.5 for i in range(30_000)]
    return [["head"], inner, "tail"], inner.clear

check(make, {protocol})
"""
    )
    assert out.strip() == LIST_EMPTIED_OUTCOME


# Other containers the engine reads while file.write may run: each keeps
# what it is saving alive (or refuses a changed dict, as pickle does).
OTHER_MAKERS = {
    "dict values": ("d = {i: float(i) + 0.5 for i in range(30_000)}\n    return d, d.clear"),
    "instance dict": (
        "o = Plain()\n"
        "    o.__dict__.update((f'a{i}', float(i)) for i in range(30_000))\n"
        "    return o, o.__dict__.clear"
    ),
    "tuple items": (
        "t = tuple([float(i) + 0.5] for i in range(10_000))\n"
        "    return t, lambda: [x.clear() for x in t]"
    ),
    "slot values": (
        "objs = [Slotted([float(i)] * 500, [i] * 500) for i in range(20)]\n"
        "    def hook():\n"
        "        for o in objs:\n"
        "            del o.a, o.b\n"
        "    return objs, hook"
    ),
}


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("kind", sorted(OTHER_MAKERS))
def test_file_write_empties_other_containers(protocol, kind):
    out = run_child(
        FILE_WRITER
        + f"""
import sys, types

# Importable classes, pickled by reference by both picklers.
defs = types.ModuleType("borrowed_defs")
defs.__file__ = "borrowed_defs.py"
sys.modules["borrowed_defs"] = defs

class Plain:
    __module__ = "borrowed_defs"

class Slotted:
    __module__ = "borrowed_defs"
    __slots__ = ("a", "b")
    def __init__(self, a, b):
        self.a, self.b = a, b

defs.Plain, defs.Slotted = Plain, Slotted

def make():
    {OTHER_MAKERS[kind]}

check(make, {protocol})
"""
    )
    assert out.strip() in ("ok", "error")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_override_changes_the_class(protocol):
    # A Pickler's reducer_override assigns `obj.__class__` and collects
    # the old class, which only the object referred to; the engine must not
    # use the class it read before the hook ran. The payload is the one of
    # an instance of the new class.
    out = run_child(
        f"""
        import gc, io, pickle, cloudpickle

        class Replacement:
            def __init__(self):
                self.value = 42

        def make():
            class Doomed:
                pass
            obj = Doomed()
            obj.value = 42
            return obj

        class Retyping(cloudpickle.Pickler):
            def reducer_override(self, obj):
                if type(obj).__name__ == "Doomed":
                    obj.__class__ = Replacement
                    gc.collect()
                return NotImplemented

        for _ in range(5):
            buf = io.BytesIO()
            Retyping(buf, protocol={protocol}).dump([make(), "tail"])
            junk = [type("Junk", (), {{}}) for _ in range(20)]
            expected = pickle.dumps([Replacement(), "tail"], protocol={protocol})
            assert buf.getvalue() == expected, (buf.getvalue(), expected)
        print("ok")
        """
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_id_removes_the_item_and_fails(protocol):
    # The same through a Pickler's persistent_id hook, which sees every
    # item (ints and floats included) before anything is written.
    out = run_child(
        f"""
        import io, pickle, cloudpickle

        class Removed:
            pass

        def make():
            global holder
            holder = [1, 2.5, Removed(), "x"]
            return [holder]

        def persistent_id(obj):
            if type(obj) is Removed:
                holder.clear()
                del obj  # no frame of the traceback keeps it alive
                raise ValueError("hook failed")
            return None

        for module in (pickle, cloudpickle):
            # A subclass: CPython 3.13.0's C Pickler refuses the hook as an
            # instance attribute. A static method, so that no frame of ours
            # holds the object in the traceback.
            class Hooked(module.Pickler):
                persistent_id = staticmethod(persistent_id)

            for _ in range(20):
                pickler = Hooked(io.BytesIO(), protocol={protocol})
                try:
                    pickler.dump(make())
                except ValueError as e:
                    notes = "".join(getattr(e, "__notes__", None) or [str(e)])
                    assert "hook failed" in str(e), e
                    if module is cloudpickle:
                        assert "Removed object" in notes, notes
                else:
                    raise AssertionError("no error from " + module.__name__)
                junk = [Removed() for _ in range(100)]
        print("ok")
        """
    )
    assert out.strip() == "ok"
