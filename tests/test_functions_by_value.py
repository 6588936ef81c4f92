"""Functions pickled by value: the Python helpers, and payloads loaded elsewhere.

The first part tests the helpers exposed by ``cloudpickle.cloudpickle``
(pickling side: the engine's own rules, and the bytecode analysis and
reducers written in Python) and ``cloudpickle._reconstructors`` (loading
side) directly. The second part
pickles functions with ``cloudpickle.dumps`` in this process and loads them
with plain ``pickle`` in a fresh interpreter, which has never seen their
definitions, then runs them there.
"""

import abc
import asyncio
import collections
import dataclasses
import dis
import enum
import functools
import io
import opcode
import os
import pickle
import subprocess
import sys
import textwrap
import types
import typing
import xml.etree.ElementTree

import _fbv_helpers
import _fbv_pkg
import _fbv_pkg.sub
import _importable
import cloudpickle
import pytest
from _child_process import load_in_child, run_python
from _helpers import PROTOCOLS, assert_same_bytes, unpicklable_lock
from cloudpickle import _reconstructors as recon
from cloudpickle import cloudpickle as cp

# In the children: make importing this test module impossible, so that a
# function that loads there was really carried by value.
BLOCK_TEST_MODULE = f"import sys; sys.modules[{__name__!r}] = None"

GLOBAL_OPNAMES = frozenset(("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"))


def make_module(name, source):
    """Execute ``source`` in a new module called ``name``, which is not put
    in ``sys.modules`` (so its functions cannot be found by reference)."""
    module = types.ModuleType(name)
    exec(textwrap.dedent(source), module.__dict__)  # noqa: S102 - test code made on the fly
    return module


def global_references(payload):
    """The ``(module, name)`` pairs a payload asks the unpickler to import."""
    seen = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            seen.append((module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(payload)).load()
    return seen


def globals_by_dis(code):
    """Oracle for ``_extract_code_globals``: the global names found by
    ``dis`` in ``code`` and in the code objects nested in it."""
    names = {}
    for instr in dis.get_instructions(code):
        if instr.opname in GLOBAL_OPNAMES:
            names.setdefault(instr.argval, None)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            for name in globals_by_dis(const):
                names.setdefault(name, None)
    return list(names)


# =============================================================================
# Part 1: the Python helpers on their own (no Rust engine involved).
# =============================================================================


class TestExtractCodeGlobals:
    def test_reads_writes_and_deletes_in_first_use_order(self):
        src = textwrap.dedent(
            """
            def f():
                global w, d
                a = zeta + alpha.attr
                w = len(a)
                del d
                return zeta, mid
            """
        )
        names = cp._extract_code_globals(make_module("_fbv_src", src).f.__code__)
        assert list(names) == ["zeta", "alpha", "len", "w", "d", "mid"]
        assert all(v is None for v in names.values())

    def test_attributes_and_locals_are_not_globals(self):
        def f(arg):
            local = arg
            return os.path.join(local, arg)

        assert list(cp._extract_code_globals(f.__code__)) == ["os"]

    def test_nested_code_objects_are_included(self):
        def outer():
            first = sys.version

            def inner():
                return textwrap.dedent(first)

            class Local:
                def method(self):
                    return pickle.HIGHEST_PROTOCOL

            return inner, Local, (lambda: io.BytesIO)

        names = list(cp._extract_code_globals(outer.__code__))
        assert names[0] == "sys"
        assert set(names) == {"sys", "textwrap", "pickle", "io"}

    def test_extended_arg_indices(self):
        # More than 256 distinct names: the name indices need EXTENDED_ARG.
        count = 700
        body = "\n".join(f"    g{i} = v{i}" for i in range(count))
        src = "def big():\n    global " + ", ".join(f"g{i}" for i in range(count)) + "\n" + body
        names = cp._extract_code_globals(make_module("_fbv_src", src).big.__code__)
        expected = []
        for i in range(count):
            expected += [f"v{i}", f"g{i}"]
        assert list(names) == expected

    def test_matches_dis_on_the_standard_library(self):
        checked = 0
        for module in (os, pickle, textwrap, functools, collections, dis, asyncio, typing):
            for value in vars(module).values():
                candidates = [value]
                if isinstance(value, type):
                    candidates = list(vars(value).values())
                for func in candidates:
                    # On PyPy some functions of the standard library are
                    # written in RPython: their `builtin-code` objects have
                    # no bytecode, for dis as for the engine.
                    if isinstance(func, types.FunctionType) and isinstance(
                        func.__code__, types.CodeType
                    ):
                        code = func.__code__
                        assert list(cp._extract_code_globals(code)) == globals_by_dis(code), func
                        checked += 1
        assert checked > 200

    def test_result_is_cached_per_code_object(self):
        def f():
            return json_like  # noqa: F821

        first = cp._extract_code_globals(f.__code__)
        assert cp._extract_code_globals(f.__code__) is first
        assert list(first) == ["json_like"]

    def test_rejects_what_is_not_a_code_object(self):
        with pytest.raises(TypeError, match="expects a code object"):
            cp._extract_code_globals(lambda: 0)


_WITHOUT_DELETE_GLOBAL = """
import opcode
# An interpreter without DELETE_GLOBAL (as CPython 3.16 may be): the
# constants and the walk over the bytecode use what opcode has.
# (3.15 makes opmap a frozendict: replace it rather than delete from it.)
opcode.opmap = {k: v for k, v in opcode.opmap.items() if k != "DELETE_GLOBAL"}
import pickle
import cloudpickle
from cloudpickle.cloudpickle import *  # noqa
module = cloudpickle.cloudpickle
assert not hasattr(module, "DELETE_GLOBAL") and not hasattr(cloudpickle, "DELETE_GLOBAL")
assert module.GLOBAL_OPS == (opcode.opmap["STORE_GLOBAL"], opcode.opmap["LOAD_GLOBAL"])
assert GLOBAL_OPS == module.GLOBAL_OPS

def f():
    global w
    w = len("abc")
    return w + OFFSET

OFFSET = 1
assert list(module._extract_code_globals(f.__code__)) == ["len", "w", "OFFSET"]
g = pickle.loads(cloudpickle.dumps(f))
assert g() == 4 and g.__globals__["OFFSET"] == 1 and g.__globals__["w"] == 3
print("ok")
"""


class TestOpcodeConstants:
    def test_built_from_the_running_opcode_module(self):
        public = cloudpickle.cloudpickle
        assert public.STORE_GLOBAL == opcode.opmap["STORE_GLOBAL"]
        assert public.LOAD_GLOBAL == opcode.opmap["LOAD_GLOBAL"]
        expected = tuple(
            opcode.opmap[name]
            for name in ("STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_GLOBAL")
            if name in opcode.opmap
        )
        assert public.GLOBAL_OPS == expected
        assert public.HAVE_ARGUMENT == dis.HAVE_ARGUMENT
        assert public.EXTENDED_ARG == dis.EXTENDED_ARG
        if "DELETE_GLOBAL" in opcode.opmap:
            assert public.DELETE_GLOBAL == opcode.opmap["DELETE_GLOBAL"]

    def test_an_interpreter_without_delete_global(self):
        out = subprocess.run(
            [sys.executable, "-c", _WITHOUT_DELETE_GLOBAL],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["ok"]


class TestCodeReduce:
    def samples(self):
        def plain(a, b=1, *args, c, d=2, **kw):
            return a + b + c + d

        def posonly(a, /, b):
            return a, b

        def with_cells():
            x = 1

            def inner():
                return x

            return inner

        def gen():
            yield 1

        async def coro():
            await asyncio.sleep(0)

        def try_except():
            try:
                return 1 / 0
            except ZeroDivisionError as exc:
                return exc

        return [
            plain.__code__,
            posonly.__code__,
            with_cells.__code__,
            with_cells().__code__,
            gen.__code__,
            coro.__code__,
            try_except.__code__,
            (lambda: None).__code__,
            compile("x = 1\nfor i in range(3): x += i", "<module>", "exec"),
            textwrap.dedent.__code__,
        ]

    def test_round_trip_through_the_constructor(self):
        for code in self.samples():
            constructor, args = cp._code_reduce(code)
            assert constructor is types.CodeType
            rebuilt = types.CodeType(*args)
            assert rebuilt == code
            # The file name is not carried (cloudpickle 3.1.3 and later).
            assert rebuilt.co_filename == "<dynamic-code>"
            for attr in ("co_name", "co_firstlineno", "co_freevars",
                         "co_cellvars", "co_varnames", "co_names", "co_flags",
                         "co_argcount", "co_posonlyargcount", "co_kwonlyargcount"):  # fmt: skip
                assert getattr(rebuilt, attr) == getattr(code, attr), attr
            if hasattr(code, "co_qualname"):
                assert rebuilt.co_qualname == code.co_qualname

    def test_file_name_is_a_new_string_each_time(self):
        # Two code objects of one payload must not share the file name
        # object (the memo would write a reference to the first), and the
        # name must be a string the compiler did not intern.
        index = cp._CODE_FIELDS.index("co_filename")
        first = cp._code_reduce(self.samples()[0])[1][index]
        second = cp._code_reduce(self.samples()[1])[1][index]
        assert first == second == "<dynamic-code>"
        assert first is not second

    def test_nested_code_objects_carry_the_dynamic_file_name(self):
        def outer():
            def inner():
                return lambda: 1

            return inner

        loaded = pickle.loads(cloudpickle.dumps(outer))
        codes = [loaded.__code__]
        while codes:
            code = codes.pop()
            assert code.co_filename == "<dynamic-code>", code
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        assert loaded()()() == 1
        # Standalone code objects too.
        assert pickle.loads(cloudpickle.dumps(outer.__code__)).co_filename == "<dynamic-code>"

    def test_rebuilt_code_runs(self):
        def add(a, b=2):
            return a + b

        rebuilt = types.CodeType(*cp._code_reduce(add.__code__)[1])
        assert types.FunctionType(rebuilt, {}, "add", (2,))(40) == 42

    def test_argument_count_matches_the_running_python(self):
        _, args = cp._code_reduce((lambda: 0).__code__)
        if sys.version_info >= (3, 11):
            assert len(args) == 18
        else:
            assert len(args) == 16


def _reconstructors_of(kind):
    """The Python reconstructors, or the published (native) ones."""
    return recon if kind == "python" else cloudpickle.cloudpickle


class TestCellsAndSimpleReducers:
    def test_cell_reduce(self):
        cell = types.CellType([1])
        constructor, args = cp._cell_reduce(cell)
        # The published reconstructors (the engine's native versions).
        public = cloudpickle.cloudpickle
        assert constructor is public._make_cell and args == ([1],)
        assert cp._cell_reduce(types.CellType()) == (public._make_empty_cell, ())

    @pytest.mark.parametrize("module", ["python", "native"])
    def test_make_cell_and_empty_cell(self, module):
        recon = _reconstructors_of(module)
        assert recon._make_cell(5).cell_contents == 5
        assert recon._make_cell(None).cell_contents is None
        for cell in (recon._make_cell(), recon._make_empty_cell()):
            assert isinstance(cell, types.CellType)
            with pytest.raises(ValueError):
                _ = cell.cell_contents
        assert recon._make_empty_cell() is not recon._make_empty_cell()
        marker = cloudpickle.cloudpickle._empty_cell_value
        for cell in (recon._make_cell(marker), recon._make_cell(value=marker)):
            with pytest.raises(ValueError):
                _ = cell.cell_contents
        assert recon._make_cell(value=[2]).cell_contents == [2]
        with pytest.raises(TypeError):
            recon._make_cell(1, 2)
        with pytest.raises(TypeError):
            recon._make_cell(other=1)

    def test_get_cell_contents(self):
        assert recon._get_cell_contents(types.CellType(3)) == 3
        assert recon._get_cell_contents(types.CellType()) is recon._empty_cell_value

    def test_classmethod_and_staticmethod(self):
        def f(x):
            return x

        for wrapper in (classmethod, staticmethod):
            obj = wrapper(f)
            assert cp._classmethod_reduce(obj) == (wrapper, (f,))

    def test_method(self):
        point = _importable.Point(1, 2)
        assert cp._method_reduce(point.__eq__) == (
            types.MethodType,
            (_importable.Point.__eq__, point),
        )

    def test_module(self):
        assert cp._module_reduce(os.path) == (recon.subimport, (os.path.__name__,))
        dynamic = types.ModuleType("_not_in_sys_modules")
        dynamic.value = 3
        dynamic.__builtins__ = {"junk": object()}
        constructor, (name, namespace) = cp._module_reduce(dynamic)
        assert constructor is recon.dynamic_subimport and name == "_not_in_sys_modules"
        assert namespace["value"] == 3 and "__builtins__" not in namespace

    def test_reducers_table(self):
        table = cp._REDUCERS
        assert table[types.CodeType] is cp._code_reduce
        assert table[types.CellType] is cp._cell_reduce
        assert table[classmethod] is table[staticmethod] is cp._classmethod_reduce
        assert table[types.MethodType] is cp._method_reduce
        assert table[types.ModuleType] is cp._module_reduce


class TestByValueDecision:
    def test_importable_functions_and_classes(self):
        assert cp._should_pickle_by_reference(_importable.module_function)
        assert cp._should_pickle_by_reference(_importable.Outer.Inner)
        assert cp._should_pickle_by_reference(_importable.Outer.static_fn)
        assert cp._should_pickle_by_reference(os.path.join)
        assert cp._should_pickle_by_reference(int)

    def test_local_and_dynamic_functions(self):
        assert not cp._should_pickle_by_reference(lambda: 0)

        def local():
            pass

        assert not cp._should_pickle_by_reference(local)
        copy = _fbv_helpers.detached_greet()
        assert not cp._should_pickle_by_reference(copy)
        module = make_module("_fbv_not_imported", "def f(): pass")
        assert not cp._should_pickle_by_reference(module.f)

    def test_main_module_is_by_value(self):
        def f():
            pass

        f.__module__ = "__main__"
        f.__qualname__ = "f"
        assert cp._lookup_module_and_qualname(f) is None
        assert not cp._should_pickle_by_reference(f)

    def test_name_argument(self):
        func = _importable.module_function
        assert cp._lookup_module_and_qualname(func) == (_importable, "module_function")
        assert cp._lookup_module_and_qualname(func, name="Point") is None
        assert cp._should_pickle_by_reference(_importable.Point, name="Point")

    def test_object_without_module_is_searched_for(self):
        assert cp._whichmodule(_fbv_helpers.orphan, "orphan") == "_fbv_helpers"
        assert cp._should_pickle_by_reference(_fbv_helpers.orphan)
        stray = types.FunctionType((lambda: 0).__code__, {})
        stray.__module__ = None
        assert cp._whichmodule(stray, "stray_nowhere") is None
        assert not cp._should_pickle_by_reference(stray)

    def test_modules(self):
        assert cp._should_pickle_by_reference(os)
        assert not cp._should_pickle_by_reference(types.ModuleType("_fbv_dyn_mod"))

    def test_other_objects_are_rejected(self):
        with pytest.raises(TypeError, match="cannot check importability of int instances"):
            cp._should_pickle_by_reference(1)

    def test_registered_package_and_submodules(self):
        assert not cp._is_registered_pickle_by_value(_fbv_pkg.sub)
        cloudpickle.register_pickle_by_value(_fbv_pkg)
        try:
            assert cp._is_registered_pickle_by_value(_fbv_pkg)
            assert cp._is_registered_pickle_by_value(_fbv_pkg.sub)
            assert not cp._is_registered_pickle_by_value(types.ModuleType("_fbv_pkgx"))
            assert not cp._is_registered_pickle_by_value(types.ModuleType("_fbv"))
            assert not cp._should_pickle_by_reference(_fbv_pkg.sub.shift)
            assert not cp._should_pickle_by_reference(_fbv_pkg.scale)
            assert not cp._should_pickle_by_reference(_fbv_pkg.sub)
        finally:
            cloudpickle.unregister_pickle_by_value(_fbv_pkg)
        assert cp._should_pickle_by_reference(_fbv_pkg.sub.shift)
        assert cp._should_pickle_by_reference(_fbv_pkg.sub)


class TestFunctionState:
    def make(self):
        secret = {"k": 1}

        def target(a, b: int = 2, *, c: "str" = "x") -> tuple:
            """Doc."""
            return xml.etree.ElementTree.Element, os.sep, secret, a, b, c, undefined_name  # noqa: F821

        target.extra = [1]
        return target

    def test_getstate(self):
        func = self.make()
        state, slotstate = cp._function_getstate(func)
        assert state == {"extra": [1]}
        assert list(slotstate) == [
            "__name__", "__qualname__", "__annotations__", "__kwdefaults__",
            "__defaults__", "__module__", "__doc__", "__closure__",
            "_cloudpickle_submodules", "__globals__",
        ]  # fmt: skip
        assert slotstate["__name__"] == "target"
        assert slotstate["__qualname__"] == func.__qualname__
        assert slotstate["__annotations__"] == {"b": int, "c": "str", "return": tuple}
        assert slotstate["__defaults__"] == (2,)
        assert slotstate["__kwdefaults__"] == {"c": "x"}
        assert slotstate["__module__"] == __name__
        assert slotstate["__doc__"] == "Doc."
        if sys.implementation.name == "pypy":
            # PyPy builds a new tuple of the same cells at each read of
            # __closure__.
            assert list(map(id, slotstate["__closure__"])) == list(map(id, func.__closure__))
        else:
            assert slotstate["__closure__"] is func.__closure__
        # Only the globals the code uses and that exist.
        assert slotstate["__globals__"] == {"xml": xml, "os": os}
        submodules = slotstate["_cloudpickle_submodules"]
        assert xml.etree.ElementTree in submodules and xml.etree in submodules

    def test_getnewargs_shares_globals(self):
        def f():
            return 1

        def g(x):
            return lambda: x

        globals_ref = {}
        code, base, name, argdefs, closure = cp._function_getnewargs(f, globals_ref)
        assert code is f.__code__ and name is None and argdefs is None and closure is None
        assert base == {
            k: globals()[k] for k in ("__name__", "__package__", "__file__") if k in globals()
        }
        assert globals_ref == {id(globals()): base}
        inner = g(3)
        _, base2, _, _, closure2 = cp._function_getnewargs(inner, globals_ref)
        assert base2 is base
        assert len(closure2) == 1
        with pytest.raises(ValueError):
            _ = closure2[0].cell_contents
        elsewhere = make_module("elsewhere", "def h(): pass")
        _, base3, _, _, _ = cp._function_getnewargs(elsewhere.h, globals_ref)
        assert base3 == {"__name__": "elsewhere", "__package__": None} and base3 is not base

    def test_dynamic_function_reduce_round_trip(self):
        func = self.make()
        rv = cp._dynamic_function_reduce(func, {})
        assert len(rv) == 6
        make, newargs, state, listitems, dictitems, setstate = rv
        public = cloudpickle.cloudpickle
        assert make is public._make_function and setstate is public._function_setstate
        assert listitems is None and dictitems is None
        rebuilt = make(*newargs)
        setstate(rebuilt, state)
        assert rebuilt is not func
        for attr in ("__name__", "__qualname__", "__doc__", "__defaults__", "__kwdefaults__",
                     "__annotations__", "__module__", "extra"):  # fmt: skip
            assert getattr(rebuilt, attr) == getattr(func, attr), attr
        assert rebuilt.__closure__[0].cell_contents == {"k": 1}
        assert rebuilt.__globals__["os"] is os
        assert rebuilt.__globals__["__builtins__"] is __import__("builtins").__dict__
        with pytest.raises(NameError):
            rebuilt(1)

    def test_function_reduce_defers_importable_functions(self):
        assert cp._function_reduce(_importable.module_function, {}) is NotImplemented
        assert cp._function_reduce(lambda: 0, {})[0] is cloudpickle.cloudpickle._make_function

    def test_setstate_leaves_empty_cells_empty(self):
        def outer():
            def read():
                return later  # noqa: F821 - ruff misses that it is a cell

            later = 1
            del later
            return read

        func = outer()
        rebuilt = recon._make_function(*cp._function_getnewargs(func, {}))
        recon._function_setstate(rebuilt, cp._function_getstate(func))
        with pytest.raises(ValueError):
            _ = rebuilt.__closure__[0].cell_contents


class TestReconstructors:
    def test_subimport(self):
        assert recon.subimport("os.path") is os.path
        assert recon.subimport("xml.etree.ElementTree") is xml.etree.ElementTree

    def test_dynamic_subimport(self):
        module = recon.dynamic_subimport("_fbv_made_up", {"x": 1, "__doc__": "d"})
        assert isinstance(module, types.ModuleType)
        assert module.__name__ == "_fbv_made_up" and module.x == 1 and module.__doc__ == "d"
        assert module.__dict__["__builtins__"] is __import__("builtins").__dict__
        assert "_fbv_made_up" not in sys.modules

    def test_builtin_type(self):
        assert recon._builtin_type("CodeType") is types.CodeType
        assert recon._builtin_type("ClassType") is type
        assert recon._BUILTIN_TYPE_NAMES[types.CodeType] == "CodeType"
        for cls, name in recon._BUILTIN_TYPE_NAMES.items():
            assert recon._builtin_type(name) is cls

    def test_skeleton_class_and_tracking(self):
        tracker = "fbv-test-tracker-1"
        cls = recon._make_skeleton_class(
            type, "Made", (object,), {"__module__": "somewhere"}, tracker, None
        )
        assert cls.__name__ == "Made" and cls.__module__ == "somewhere"
        again = recon._make_skeleton_class(type, "Made", (object,), {}, tracker, None)
        assert again is cls
        assert cloudpickle.cloudpickle._get_or_create_tracker_id(cls) == tracker
        untracked = recon._make_skeleton_class(type, "Made", (object,), {}, None, None)
        assert untracked is not cls

        def method(self):
            return "m"

        assert recon._class_setstate(cls, ({"method": method, "n": 1}, {})) is cls
        assert cls().method() == "m" and cls.n == 1

    def test_tracker_ids(self):
        class Local:
            pass

        first = cloudpickle.cloudpickle._get_or_create_tracker_id(Local)
        assert isinstance(first, str) and len(first) == 32
        assert cloudpickle.cloudpickle._get_or_create_tracker_id(Local) == first
        assert recon._lookup_class_or_track(first, object) is Local

    def test_class_setstate_registers_abc_subclasses(self):
        cls = recon._make_skeleton_class(abc.ABCMeta, "Shape", (abc.ABC,), {}, None, None)
        recon._class_setstate(cls, ({"_abc_impl": [int, str], "sides": 0}, {}))
        assert issubclass(int, cls) and isinstance("s", cls) and cls.sides == 0

    def test_skeleton_enum(self):
        color = recon._make_skeleton_enum(
            (enum.IntEnum,), "Color", "Where.Color", {"RED": 1, "BLUE": 2}, "paint", None, None
        )
        assert (
            color.RED == 1 and color(2) is color.BLUE and [m.name for m in color] == ["RED", "BLUE"]
        )
        assert color.__qualname__ == "Where.Color" and color.__module__ == "paint"

    def test_typevar(self):
        tv = recon._make_typevar("T", None, (int, str), False, False, None)
        assert tv.__name__ == "T" and tv.__constraints__ == (int, str)
        tv2 = recon._make_typevar("U", int, (), True, False, "fbv-typevar-tracker")
        assert tv2.__bound__ is int and tv2.__covariant__
        assert recon._make_typevar("U", int, (), True, False, "fbv-typevar-tracker") is tv2

    def test_dict_views(self):
        keys = recon._make_dict_keys(["a", "b"])
        assert type(keys) is type({}.keys()) and list(keys) == ["a", "b"]
        values = recon._make_dict_values([3, 4], True)
        assert type(values) is type(collections.OrderedDict().values()) and list(values) == [3, 4]
        items = recon._make_dict_items({"x": 1})
        assert type(items) is type({}.items()) and list(items) == [("x", 1)]
        ordered = recon._make_dict_items({"x": 1}, is_ordered=True)
        assert type(ordered) is type(collections.OrderedDict().items())

    def test_misc(self):
        marker = object()
        assert recon._file_reconstructor(marker) is marker
        assert recon._get_dataclass_field_type_sentinel("_FIELD") is dataclasses._FIELD
        assert (
            recon._get_dataclass_field_type_sentinel("_FIELD_INITVAR") is dataclasses._FIELD_INITVAR
        )
        assert recon.instance(list) == []


class TestWireNames:
    """The reconstructors are published by ``cloudpickle.cloudpickle``, the
    module payloads name (as the pure-Python cloudpickle does)."""

    def test_reexported_and_named_after_the_public_module(self):
        public = cloudpickle.cloudpickle
        for name in recon.__all__:
            if name in (
                "_make_function",
                "_function_setstate",
                "_make_cell",
                "_make_empty_cell",
                "_make_skeleton_class",
                "_class_setstate",
            ):
                # Replaced by the engine's native versions, under the same name.
                native = getattr(public, name)
                assert native is getattr(cloudpickle._engine, name)
                assert native.__module__ == "cloudpickle.cloudpickle"
                assert native.__qualname__ == name
                continue
            assert getattr(public, name, None) is getattr(recon, name), name
            obj = getattr(recon, name)
            if isinstance(obj, types.FunctionType):
                assert obj.__module__ == "cloudpickle.cloudpickle", name
                assert obj.__qualname__ == name

    def test_reconstructors_pickle_by_reference(self):
        public = cloudpickle.cloudpickle
        for func in (public._make_function, public._function_setstate, public._make_cell,
                     recon.subimport, public._make_skeleton_class,
                     public._class_setstate):  # fmt: skip
            refs = global_references(pickle.dumps(func))
            assert refs == [("cloudpickle.cloudpickle", func.__name__)]
        assert pickle.loads(pickle.dumps(recon._empty_cell_value)) is recon._empty_cell_value


# =============================================================================
# Part 2: cloudpickle.dumps here, pickle.loads in a fresh interpreter.
# =============================================================================


def dumps(obj, protocol=None):
    return cloudpickle.dumps(obj, protocol=protocol)


def probe_call(*args, **kwargs):
    """Probe source: call the loaded object with these arguments."""
    return f"def probe(obj):\n    return obj(*{args!r}, **{kwargs!r})\n"


def roundtrip_call(obj, *args, **kwargs):
    """Load ``obj``'s payload in a child and call it there with the args."""
    return load_in_child(dumps(obj), probe_call(*args, **kwargs), prelude=BLOCK_TEST_MODULE)


class TestLoadElsewhere:
    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_lambda(self, protocol):
        payload = dumps(lambda x: x + 1, protocol=protocol)
        assert load_in_child(payload, probe_call(41), prelude=BLOCK_TEST_MODULE) == 42

    def test_lambda_in_this_process(self):
        assert pickle.loads(dumps(lambda x: x * 3))(5) == 15

    def test_payload_names_only_public_reconstructors(self):
        y = 2
        refs = global_references(dumps(lambda x: x + y))
        cloudpickle_refs = {module for module, _ in refs if module.startswith("cloudpickle")}
        assert cloudpickle_refs == {"cloudpickle.cloudpickle"}
        assert ("cloudpickle.cloudpickle", "_make_function") in refs
        assert ("cloudpickle.cloudpickle", "_function_setstate") in refs

    def test_closure(self):
        def make_multiplier(n):
            factor = n * 2

            def multiply(x):
                return x * factor + n

            return multiply

        assert roundtrip_call(make_multiplier(3), 10) == 63

    def test_empty_cell(self):
        def outer():
            def read():
                return missing

            if False:
                missing = 1
            return read

        probe = """
            def probe(obj):
                try:
                    obj.__closure__[0].cell_contents
                except ValueError:
                    empty = True
                else:
                    empty = False
                try:
                    obj()
                except NameError:
                    return empty, "NameError"
                return empty, None
        """
        assert load_in_child(dumps(outer()), probe, prelude=BLOCK_TEST_MODULE) == (
            True,
            "NameError",
        )

    def test_empty_cell_on_its_own(self):
        probe = """
            def probe(obj):
                try:
                    obj.cell_contents
                except ValueError:
                    return type(obj).__name__, "empty"
                return "full"
        """
        assert load_in_child(dumps(types.CellType()), probe) == ("cell", "empty")

    def test_recursive_closure(self):
        def make():
            def fib(n):
                return n if n < 2 else fib(n - 1) + fib(n - 2)

            return fib

        assert roundtrip_call(make(), 15) == 610

    def test_mutually_recursive_closures(self):
        def make():
            def ping(n):
                return ["ping"] + (pong(n - 1) if n else [])

            def pong(n):
                return ["pong"] + (ping(n - 1) if n else [])

            return ping

        assert roundtrip_call(make(), 3) == ["ping", "pong", "ping", "pong"]

    def test_function_in_its_own_closure_and_attributes(self):
        def make():
            def me():
                return me

            me.self_ref = me
            return me

        probe = """
            def probe(obj):
                return obj() is obj, obj.self_ref is obj
        """
        assert load_in_child(dumps(make()), probe, prelude=BLOCK_TEST_MODULE) == (True, True)

    def test_defaults_annotations_attributes_doc(self):
        def described(a: int, b: "list[str]" = ["d"], *, kw: float = 1.5, **rest) -> dict:  # noqa: B006
            """The docstring."""
            return {"a": a, "b": b, "kw": kw, "rest": rest}

        described.version = (1, 2)
        described.__dict__["registry"] = {"x": described}
        probe = """
            def probe(obj):
                return (
                    obj(1, z=0),
                    obj.__name__,
                    obj.__qualname__,
                    obj.__module__,
                    obj.__doc__,
                    obj.__defaults__,
                    obj.__kwdefaults__,
                    {k: repr(v) for k, v in obj.__annotations__.items()},
                    obj.version,
                    obj.registry["x"] is obj,
                )
        """
        result = load_in_child(dumps(described), probe, prelude=BLOCK_TEST_MODULE)
        assert result == (
            {"a": 1, "b": ["d"], "kw": 1.5, "rest": {"z": 0}},
            "described",
            described.__qualname__,
            __name__,
            "The docstring.",
            (["d"],),
            {"kw": 1.5},
            {k: repr(v) for k, v in described.__annotations__.items()},
            (1, 2),
            True,
        )

    def test_functools_wraps(self):
        def trace(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                return ("traced", func(*args, **kwargs))

            return wrapper

        @trace
        def area(w, h=2):
            """Area of a rectangle."""
            return w * h

        probe = """
            def probe(obj):
                return obj(3), obj.__name__, obj.__doc__, obj.__wrapped__(5, 5), obj.__qualname__
        """
        result = load_in_child(dumps(area), probe, prelude=BLOCK_TEST_MODULE)
        assert result == (("traced", 6), "area", "Area of a rectangle.", 25, area.__qualname__)

    def test_submodules_reached_by_attribute(self):
        def use_submodules(path):
            root = xml.etree.ElementTree.fromstring("<root><leaf/></root>")
            return os.path.basename(path), os.path.dirname(path), root[0].tag

        prelude = f"""
            import sys
            sys.modules[{__name__!r}] = None
            before = "xml.etree.ElementTree" in sys.modules
        """
        probe = """
            def probe(obj):
                return before, obj("/a/b/c.txt"), "xml.etree.ElementTree" in sys.modules
        """
        result = load_in_child(dumps(use_submodules), probe, prelude=prelude)
        assert result == (False, ("c.txt", "/a/b", "leaf"), True)

    def test_shared_globals_in_one_dumps_call(self):
        module = make_module(
            "_fbv_dynamic_globals",
            """
            total = 10

            def add(n):
                global total
                total += n
                return total

            def get():
                return total

            def reset():
                global total
                del total
            """,
        )
        probe = """
            def probe(obj):
                add, get, reset = obj
                out = [get(), add(5), get(), add.__globals__ is get.__globals__ is reset.__globals__]
                reset()
                try:
                    get()
                except NameError:
                    out.append("gone")
                return out
        """
        payload = dumps([module.add, module.get, module.reset])
        assert load_in_child(payload, probe) == [10, 15, 15, True, "gone"]

    def test_separate_dumps_calls_do_not_share_globals(self):
        module = make_module(
            "_fbv_dynamic_globals2", "x = 1\ndef f():\n    return x\ndef g():\n    return x\n"
        )
        f = pickle.loads(dumps(module.f))
        g = pickle.loads(dumps(module.g))
        assert f() == g() == 1
        assert f.__globals__ is not g.__globals__
        f2, g2 = pickle.loads(dumps([module.f, module.g]))
        assert f2.__globals__ is g2.__globals__

    def test_shared_globals_across_dump_calls_of_one_pickler(self):
        module = make_module(
            "_fbv_dynamic_globals3",
            "n = 0\ndef inc():\n    global n\n    n += 1\n    return n\ndef peek():\n    return n\n",
        )
        buffer = io.BytesIO()
        pickler = cloudpickle.Pickler(buffer)
        pickler.dump(module.inc)
        pickler.dump(module.peek)
        probe = """
            import io
            def probe(obj):
                unpickler = pickle.Unpickler(io.BytesIO(payload))
                inc, peek = unpickler.load(), unpickler.load()
                inc(); inc()
                return peek(), inc.__globals__ is peek.__globals__
        """
        assert load_in_child(buffer.getvalue(), probe) == (2, True)

    def test_generators_and_coroutines(self):
        def make():
            def countdown(n):
                while n:
                    yield n
                    n -= 1

            async def slow_double(x):
                await asyncio.sleep(0)
                return 2 * x

            async def ticks(n):
                for i in range(n):
                    await asyncio.sleep(0)
                    yield i

            return countdown, slow_double, ticks

        probe = """
            import asyncio, inspect
            def probe(obj):
                countdown, slow_double, ticks = obj

                async def collect():
                    return [i async for i in ticks(3)]

                return (
                    list(countdown(3)),
                    inspect.iscoroutinefunction(slow_double),
                    asyncio.run(slow_double(21)),
                    inspect.isasyncgenfunction(ticks),
                    asyncio.run(collect()),
                )
        """
        result = load_in_child(dumps(make()), probe, prelude=BLOCK_TEST_MODULE)
        assert result == ([3, 2, 1], True, 42, True, [0, 1, 2])

    def test_zero_argument_super_with_an_importable_class(self):
        # The function goes by value; its __class__ cell holds an importable
        # class, which goes by reference.
        copy = _fbv_helpers.detached_greet()
        probe = """
            import _fbv_helpers
            def probe(obj):
                return obj(_fbv_helpers.Child())
        """
        assert load_in_child(dumps(copy), probe) == "child+base"

    def test_explicit_class_cell_in_a_closure(self):
        greeter = _fbv_helpers.Child().greeter()
        assert roundtrip_call(greeter, "!") == "base!"

    def test_partial_of_a_lambda(self):
        part = functools.partial(lambda a, b, *, c: (a, b, c), 1, c=3)
        assert roundtrip_call(part, 2) == (1, 2, 3)

    def test_code_object(self):
        def source(a, b=1):
            return [a, b, len(str(a))]

        probe = """
            import types
            def probe(code):
                func = types.FunctionType(code, {"__builtins__": __builtins__}, "rebuilt", (1,))
                return type(code).__name__, code.co_name, code.co_varnames, func(123)
        """
        result = load_in_child(dumps(source.__code__), probe)
        assert result == ("code", "source", ("a", "b"), [123, 1, 3])

    def test_cell_with_value(self):
        cell = types.CellType({"payload": [1, 2]})
        probe = """
            def probe(obj):
                return type(obj).__name__, obj.cell_contents
        """
        assert load_in_child(dumps(cell), probe) == ("cell", {"payload": [1, 2]})

    def test_classmethod_and_staticmethod_objects(self):
        objs = [classmethod(lambda cls, x: (cls.__name__, x)), staticmethod(lambda: "static")]
        probe = """
            def probe(obj):
                cm, sm = obj
                class Host:
                    method = cm
                    helper = sm
                return type(cm).__name__, Host.method(1), type(sm).__name__, Host.helper()
        """
        result = load_in_child(dumps(objs), probe, prelude=BLOCK_TEST_MODULE)
        assert result == ("classmethod", ("Host", 1), "staticmethod", "static")

    def test_bound_method_of_a_lambda(self):
        bound = types.MethodType(lambda self, n: self.x * n, _importable.Point(7, 0))
        assert roundtrip_call(bound, 6) == 42

    def test_module_objects(self):
        dynamic = make_module("_fbv_shipped_module", "CONST = 5\ndef twice(x):\n    return 2 * x\n")
        probe = """
            def probe(obj):
                path_mod, shipped = obj
                return (
                    path_mod.join("a", "b") == __import__("os").path.join("a", "b"),
                    shipped.__name__,
                    shipped.twice(shipped.CONST),
                    "_fbv_shipped_module" in sys.modules,
                )
        """
        prelude = "import sys"
        result = load_in_child(dumps([os.path, dynamic]), probe, prelude=prelude)
        assert result == (True, "_fbv_shipped_module", 10, False)

    def test_registered_package_goes_by_value(self):
        cloudpickle.register_pickle_by_value(_fbv_pkg)
        try:
            payload = dumps([_fbv_pkg.scale, _fbv_pkg.sub.shift])
        finally:
            cloudpickle.unregister_pickle_by_value(_fbv_pkg)
        # The child cannot import the package: the functions must carry
        # everything they need.
        prelude = """
            import sys
            sys.modules["_fbv_pkg"] = None
            sys.modules["_fbv_pkg.sub"] = None
        """
        probe = """
            def probe(obj):
                scale, shift = obj
                return scale(2), shift(1), scale.__module__, shift.__module__
        """
        assert load_in_child(payload, probe, prelude=prelude) == (
            6,
            101,
            "_fbv_pkg",
            "_fbv_pkg.sub",
        )
        # Once unregistered, they go by reference again.
        assert dumps(_fbv_pkg.sub.shift) == pickle.dumps(
            _fbv_pkg.sub.shift, cloudpickle.DEFAULT_PROTOCOL
        )

    def test_unpicklable_object_in_a_closure(self):
        lock = unpicklable_lock()

        def uses_lock():
            with lock:
                return 1

        with pytest.raises(TypeError, match="lock"):
            dumps(uses_lock)

    @pytest.mark.parametrize("protocol", PROTOCOLS)
    def test_importable_functions_go_by_reference(self, protocol):
        for func in (
            _importable.module_function,
            _importable.Outer.static_fn,
            _importable.Outer.Inner.method,
            _fbv_helpers.Child.greet,
            os.path.join,
            textwrap.dedent,
            _fbv_helpers.orphan,
            len,
        ):
            assert_same_bytes(dumps(func, protocol=protocol), pickle.dumps(func, protocol=protocol))

    def test_deterministic_payloads(self):
        def make():
            data = {"k": [1, 2]}

            def f(x: int = 3) -> list:
                """doc"""
                return [x, data, os.sep]

            f.attr = "a"
            return f

        func = make()
        first = dumps(func)
        assert dumps(func) == first
        # A function loaded from a payload pickles the same way every time.
        reloaded = pickle.loads(first)
        again = dumps(reloaded)
        assert dumps(pickle.loads(again)) == again


class TestMainModule:
    """Functions defined in a script (``__main__``) travel by value."""

    SCRIPT = textwrap.dedent(
        """
        import os
        import sys
        import xml.etree.ElementTree

        import cloudpickle

        RATE = 3

        def helper(x):
            return x * RATE

        def main_func(x, extra=0):
            \"\"\"Defined in __main__.\"\"\"
            return helper(x) + extra + len(os.path.basename("/p/abcd"))

        square = lambda x: x * x  # noqa: E731

        def tag_of(text):
            return xml.etree.ElementTree.fromstring(text).tag

        def make_counter():
            count = 0

            def step():
                nonlocal count
                count += 1
                return count

            return step

        with open(sys.argv[1], "wb") as f:
            f.write(cloudpickle.dumps([main_func, square, tag_of, make_counter(), helper]))
        """
    )

    def test_functions_defined_in_main(self, tmp_path):
        script = tmp_path / "main_script.py"
        script.write_text(self.SCRIPT)
        payload_path = tmp_path / "payload.pkl"
        run_python([str(script), str(payload_path)], cwd=str(tmp_path))
        payload = payload_path.read_bytes()
        probe = """
            def probe(obj):
                main_func, square, tag_of, step, helper = obj
                return (
                    main_func(2, extra=10),
                    main_func.__doc__,
                    main_func.__module__,
                    square(9),
                    tag_of("<top/>"),
                    [step(), step()],
                    main_func.__globals__ is square.__globals__ is helper.__globals__,
                    main_func.__globals__["helper"] is helper,
                )
        """
        result = load_in_child(payload, probe)
        assert result == (20, "Defined in __main__.", "__main__", 81, "top", [1, 2], True, True)
        # Nothing is looked up in the loading process's __main__.
        with_main = [ref for ref in global_references(payload) if ref[0] == "__main__"]
        assert with_main == []


def test_annotations_not_yet_read_are_shipped_as_a_dict():
    # The compiler stores annotations as a tuple of pairs until
    # ``__annotations__`` is first read: the reduction must read them the
    # way the attribute does.
    namespace = {}
    exec("def annotated(x: int, y: 'str' = 'a') -> float:\n    return 1.0\n", namespace)
    func = namespace["annotated"]
    loaded = pickle.loads(cloudpickle.dumps(func))
    assert loaded.__annotations__ == {"x": int, "y": "str", "return": float}
    assert func.__annotations__ == loaded.__annotations__


def test_reconstructor_names_follow_copyreg_after_caching():
    """The engine remembers where its own reconstructors were found, but an
    extension code or a dispatch table entry registered afterwards still
    takes effect, as it does for pickle."""
    import copyreg
    import pickletools

    scale = 3
    f = lambda x: x * scale  # noqa: E731
    for _ in range(2):
        before = cloudpickle.dumps(f)
    assert pickle.loads(before)(2) == 6
    code = 0x7FFF_0F01
    copyreg.add_extension("cloudpickle.cloudpickle", "_make_function", code)
    try:
        after = cloudpickle.dumps(f)
        ops = {op.name for op, _, _ in pickletools.genops(after)}
        assert "EXT4" in ops
        assert pickle.loads(after)(2) == 6
    finally:
        copyreg.remove_extension("cloudpickle.cloudpickle", "_make_function", code)
    assert cloudpickle.dumps(f) == before

    seen = []

    def reduce_builtin(obj):
        seen.append(obj)
        return obj.__qualname__

    # The type of the engine's functions: type(len) on CPython, cpyext's
    # builtin_function_or_method on PyPy.
    native_type = type(cloudpickle._engine.dumps)
    copyreg.pickle(native_type, reduce_builtin)
    try:
        # The reducer names the global the same way; what matters is that
        # it is consulted.
        assert pickle.loads(cloudpickle.dumps(f))(2) == 6
        assert any(getattr(o, "__name__", "") == "_make_function" for o in seen)
    finally:
        del copyreg.dispatch_table[native_type]


@pytest.mark.skipif(
    sys.implementation.name != "pypy", reason="builtin functions are function objects on PyPy only"
)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pypy_builtin_function_by_value(protocol):
    # On PyPy `float.fromhex` is a function whose code is a builtin-code
    # object and whose __module__ is None (no module has it): it is rebuilt
    # from that code, which PyPy pickles by reference to the interpreter.
    func = float.__dict__["fromhex"].__func__
    assert type(func) is types.FunctionType and func.__module__ is None
    loaded = pickle.loads(cloudpickle.dumps(func, protocol))
    assert type(loaded) is types.FunctionType
    assert loaded(float, "0x1") == 1.0
    descriptor = pickle.loads(cloudpickle.dumps(float.__dict__["fromhex"], protocol))
    assert type(descriptor) is classmethod
    assert descriptor.__func__(float, "0x1.8") == 1.5
    # Run in another process too.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; f = pickle.load(sys.stdin.buffer); print(f(float, '0x2'))",
        ],
        input=cloudpickle.dumps(func, protocol),
        capture_output=True,
        check=True,
    )
    assert child.stdout.strip() == b"2.0"
