"""Functions exchanged with the reference cloudpickle (not a test module).

This file is executed, not imported: both sides load it with
:func:`load_samples_module`, under a module name that is *not* registered in
``sys.modules``, so every function here is pickled by value. It only uses
the standard library, as the reference's interpreter runs it in isolated
mode.

``SAMPLES`` maps a label to ``(build, probe)``: ``build()`` makes the object
to pickle; ``probe(obj)`` exercises an object (the original, or one loaded
from a payload) and returns plain data to compare between both sides.
"""

import asyncio
import functools
import math
import os
import types
import xml.etree.ElementTree

OFFSET = 1000
COUNTER = 0


def load_samples_module(path, name="_interop_samples_dynamic"):
    """Execute the samples file as a module that ``sys.modules`` does not
    know about, and return that module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_probe(probe, obj):
    """``("ok", probe(obj))``, or ``("raised", exception type, message)``."""
    try:
        return ("ok", probe(obj))
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return ("raised", type(exc).__name__, str(exc))


# --- the samples -------------------------------------------------------------


def build_lambda():
    return lambda x: x * 2 + OFFSET


def build_closure():
    def make_adder(n):
        def add(x):
            return x + n

        return add

    return make_adder(5)


def build_empty_cell():
    def outer():
        def read():
            return never_set

        return read
        never_set = 1  # makes never_set a (forever empty) cell

    return outer()


def probe_empty_cell(obj):
    try:
        _ = obj.__closure__[0].cell_contents
    except ValueError:
        empty = True
    else:
        empty = False
    raised = None
    try:
        obj()
    except NameError:
        raised = "NameError"
    return (empty, raised)


def build_recursive():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    return fact


def build_mutual():
    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)

    return is_even


def build_annotated():
    def described(a: int, b: str = "bb", *rest: float, c: bool = True, **kw: bytes) -> list:
        """A function with everything a signature can hold."""
        return [a, b, rest, c, sorted(kw)]

    described.tag = {"kind": "sample", "n": 2}
    described.__qualname__ = "renamed.described"
    return described


def probe_annotated(obj):
    return (
        obj(1, "x", 2.5, c=False, z=b""),
        obj.__name__,
        obj.__qualname__,
        obj.__doc__,
        obj.__defaults__,
        obj.__kwdefaults__,
        {k: repr(v) for k, v in obj.__annotations__.items()},
        obj.tag,
    )


def build_shared_globals():
    def bump(n):
        global COUNTER
        COUNTER += n
        return COUNTER

    def read():
        return COUNTER

    return [bump, read]


def probe_shared_globals(obj):
    bump, read = obj
    start = read()
    return (
        bump(2) - start,
        bump(3) - start,
        read() - start,
        bump.__globals__ is read.__globals__,
    )


def build_submodules():
    def parse_and_join(text, *parts):
        root = xml.etree.ElementTree.fromstring(text)
        return [child.tag for child in root], os.path.join(*parts)

    return parse_and_join


def build_generators():
    def squares(n):
        for i in range(n):
            yield i * i

    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    async def countdown(n):
        while n:
            yield n
            n -= 1

    return [squares, double, countdown]


def probe_generators(obj):
    squares, double, countdown = obj

    async def collect():
        return [i async for i in countdown(3)]

    return (list(squares(4)), asyncio.run(double(21)), asyncio.run(collect()))


def build_partial():
    return functools.partial(lambda a, b, c=0: (a - b) * c, 10, c=3)


def build_wrapped():
    def logged(func):
        @functools.wraps(func)
        def wrapper(*args):
            return ("logged", func(*args))

        return wrapper

    @logged
    def hypotenuse(a, b):
        """Length of the hypotenuse."""
        return math.hypot(a, b)

    return hypotenuse


def probe_wrapped(obj):
    return (obj(3, 4), obj.__name__, obj.__doc__, obj.__wrapped__(6, 8))


def build_signature_kinds():
    def kinds(a, /, b, *, c=3):
        return (a, b, c)

    return kinds


def build_self_reference():
    def me():
        return "me"

    me.myself = me
    me.items = [me, me]
    return me


def probe_self_reference(obj):
    return (obj(), obj.myself is obj, obj.items[0] is obj.items[1] is obj)


def build_shared_in_container():
    f = lambda x: -x
    return {"a": f, "b": f, "c": [f, OFFSET]}


def probe_shared_in_container(obj):
    return (obj["a"] is obj["b"] is obj["c"][0], obj["a"](4), obj["c"][1])


def build_default_is_function():
    inner = lambda y: y + 1

    def outer(x, step=inner):
        return step(x)

    return outer


def build_method_objects():
    return [
        staticmethod(lambda: "static"),
        classmethod(lambda cls: cls.__name__),
        types.MethodType(lambda self, y: len(self) + y, [1, 2, 3]),
    ]


def probe_method_objects(obj):
    static, klass, bound = obj
    return (
        type(static).__name__,
        static.__func__(),
        type(klass).__name__,
        klass.__func__(int),
        bound(10),
    )


def build_code_and_cells():
    def with_free():
        return captured

    captured = [1, 2]
    return [(lambda x: x + 41).__code__, with_free.__closure__[0], with_free.__code__]


def probe_code_and_cells(obj):
    code, cell, free_code = obj
    rebuilt = types.FunctionType(code, {"__builtins__": __builtins__})
    return (rebuilt(1), cell.cell_contents, free_code.co_freevars, free_code.co_name)


def build_closure_over_module():
    mod = math

    def area(r):
        return round(mod.pi * r * r, 6)

    return area


def call_with(*args, **kwargs):
    """A probe calling the object with fixed arguments."""
    return lambda obj: obj(*args, **kwargs)


SAMPLES = {
    "lambda": (build_lambda, call_with(21)),
    "closure": (build_closure, call_with(10)),
    "empty_cell": (build_empty_cell, probe_empty_cell),
    "recursive": (build_recursive, call_with(10)),
    "mutual_recursion": (build_mutual, lambda f: (f(10), f(7))),
    "annotated": (build_annotated, probe_annotated),
    "shared_globals": (build_shared_globals, probe_shared_globals),
    "submodules": (build_submodules, call_with("<r><a/><b/></r>", "x", "y.txt")),
    "generators": (build_generators, probe_generators),
    "partial": (build_partial, call_with(4)),
    "wrapped": (build_wrapped, probe_wrapped),
    "signature_kinds": (build_signature_kinds, call_with(1, b=2)),
    "self_reference": (build_self_reference, probe_self_reference),
    "shared_in_container": (build_shared_in_container, probe_shared_in_container),
    "default_is_function": (build_default_is_function, call_with(1)),
    "method_objects": (build_method_objects, probe_method_objects),
    "code_and_cells": (build_code_and_cells, probe_code_and_cells),
    "closure_over_module": (build_closure_over_module, call_with(2)),
}
