"""Checks applied to objects loaded from older cloudpickle payloads (not a
test module).

``PROBES`` maps each sample label of ``_older_samples.py`` to a probe. A
probe takes the list of objects of that sample (the originals, in the process
that defined them, or the objects loaded from their payloads elsewhere) and
returns named checks: ``{name: thunk}``. Each thunk exercises the objects —
calls a function, instantiates a class, looks at enum members or dataclass
fields — and returns plain data (builtin types only: no addresses, nothing
defined by the samples). :func:`run_probe` evaluates them in order and
records each outcome, so one failing check does not hide the others.

The probes use only the standard library: the process that loads the
payloads has neither the samples nor the old cloudpickle.

Run as a script, this file is the loading side::

    python _older_probes.py PAYLOAD_DIR RESULT_PATH

It loads every payload listed in ``PAYLOAD_DIR/manifest.pkl`` with the
standard ``pickle`` (recording every global the payloads name), applies the
probes and writes the outcomes to ``RESULT_PATH``.
"""

import asyncio
import dataclasses
import inspect
import operator
import sys
import types
import typing

_PLAIN_ATOMS = (type(None), bool, int, float, complex, str, bytes)
_PLAIN_CONTAINERS = (tuple, list, set, frozenset)


def _is_plain(value):
    """True when ``value`` is built from builtin types only (exact types):
    it then loads anywhere and compares by value."""
    kind = type(value)
    if kind in _PLAIN_ATOMS:
        return True
    if kind in _PLAIN_CONTAINERS:
        return all(_is_plain(item) for item in value)
    if kind is dict:
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def outcome(call, *args, **kwargs):
    """``("ok", plain result)`` of ``call(*args, **kwargs)``, or
    ``("raised", exception type name)``."""
    try:
        result = call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return ("raised", type(exc).__name__)
    if not _is_plain(result):
        return ("not plain data", repr(result))
    return ("ok", result)


def run_probe(probe, objects):
    """``{check name: outcome}`` for the checks of ``probe`` on ``objects``,
    or ``{"<probe>": ("raised", ...)}`` when the probe cannot even start."""
    try:
        checks = probe(objects)
    except Exception as exc:  # noqa: BLE001
        return {"<probe>": ("raised", type(exc).__name__, str(exc))}
    return {name: outcome(thunk) for name, thunk in checks.items()}


def type_names(classes):
    return [c.__name__ for c in classes]


def reprs(mapping):
    return {k: repr(v) for k, v in mapping.items()}


# --- functions ----------------------------------------------------------------


def probe_submodules(objs):
    (f,) = objs
    return {
        "call": lambda: f("<r><a/><b/></r>", "x", "y.txt"),
        "names": lambda: (f.__module__, f.__qualname__),
    }


def probe_lambda(objs):
    (f,) = objs
    return {
        "call": lambda: f(21),
        "names": lambda: (f.__name__, f.__qualname__, f.__module__),
        "global": lambda: f.__globals__["OFFSET"],
    }


def probe_closure(objs):
    (f,) = objs
    return {
        "call": lambda: f(10),
        "qualname": lambda: f.__qualname__,
        "cells": lambda: [c.cell_contents for c in f.__closure__],
    }


def probe_recursive_closure(objs):
    (fact,) = objs
    return {
        "call": lambda: fact(10),
        "cell_is_itself": lambda: fact.__closure__[0].cell_contents is fact,
    }


def probe_empty_cell(objs):
    (read,) = objs
    return {
        "cell_is_empty": lambda: read.__closure__[0].cell_contents,
        "call": lambda: read(),
    }


def probe_mutual_recursion(objs):
    (is_even,) = objs
    is_odd = is_even.__globals__["is_odd"]
    return {
        "even": lambda: (is_even(10), is_even(7)),
        "odd": lambda: is_odd(5),
        "shared_globals": lambda: is_odd.__globals__ is is_even.__globals__,
    }


def probe_function_attributes(objs):
    (f,) = objs
    return {
        "call": lambda: f(1, "x", 2.5, c=False, z=b""),
        "call_defaults": lambda: f(2),
        "names": lambda: (f.__name__, f.__qualname__, f.__module__),
        "doc": lambda: f.__doc__,
        "defaults": lambda: (f.__defaults__, f.__kwdefaults__),
        "annotations": lambda: reprs(f.__annotations__),
        "dict": lambda: f.__dict__,
        "signature": lambda: str(inspect.signature(f)),
    }


def probe_shared_globals(objs):
    ((bump, read),) = objs
    start = read()
    return {
        "first": lambda: bump(2) - start,
        "second": lambda: bump(3) - start,
        "read": lambda: read() - start,
        "same_namespace": lambda: bump.__globals__ is read.__globals__,
    }


def probe_generators(objs):
    ((squares, triple, countdown),) = objs

    async def collect():
        return [i async for i in countdown(3)]

    return {
        "generator": lambda: (inspect.isgeneratorfunction(squares), list(squares(4))),
        "coroutine": lambda: (inspect.iscoroutinefunction(triple), asyncio.run(triple(14))),
        "async_generator": lambda: (
            inspect.isasyncgenfunction(countdown),
            asyncio.run(collect()),
        ),
    }


def probe_positional_only(objs):
    (f,) = objs
    return {
        "call": lambda: f(1, b=2),
        "by_keyword": lambda: f(a=1, b=2),
        "signature": lambda: str(inspect.signature(f)),
    }


def probe_wrapped(objs):
    (f,) = objs
    return {
        "call": lambda: f(3, 4),
        "metadata": lambda: (f.__name__, f.__qualname__, f.__doc__),
        "wrapped": lambda: f.__wrapped__(6, 8),
    }


def probe_partial(objs):
    (p,) = objs
    return {
        "call": lambda: p("b", 9),
        "parts": lambda: (p.args, p.keywords, p.func.__name__),
    }


def probe_shared_in_container(objs):
    (d,) = objs
    return {
        "identity": lambda: d["a"] is d["b"] is d["c"][0],
        "call": lambda: d["a"](4),
        "other": lambda: d["c"][1],
    }


def probe_code_object(objs):
    (code,) = objs
    return {
        "run": lambda: types.FunctionType(code, {"__builtins__": __builtins__})(1),
        "fields": lambda: (code.co_name, code.co_argcount, code.co_varnames),
    }


# --- classes ------------------------------------------------------------------


def probe_class_features(objs):
    (cls,) = objs
    inst = cls.make(4)

    def set_property():
        inst.double = 10
        return inst.x

    return {
        "names": lambda: (cls.__name__, cls.__qualname__, cls.__doc__),
        "module": lambda: cls.__module__,
        "mro": lambda: type_names(cls.__mro__),
        "super": lambda: inst.describe(),
        "property": lambda: inst.double,
        "property_setter": set_property,
        "staticmethod": lambda: cls.helper(1),
        "classmethod": lambda: type(cls.make(1)) is cls,
        "self_reference": lambda: (inst.clone() == inst, type(inst.clone()) is cls),
        "hash": lambda: hash(inst) == hash(cls(inst.x)),
        "members": lambda: sorted(k for k in vars(cls) if not k.startswith("__")),
    }


def probe_instance(objs):
    (inst,) = objs
    return {
        "class": lambda: type(inst).__name__,
        "method": lambda: inst.describe(),
        "state": lambda: (inst.x, inst.extra, sorted(vars(inst))),
        "property": lambda: inst.double,
        "isinstance_base": lambda: isinstance(inst, type(inst).__mro__[1]),
    }


def probe_bound_method(objs):
    (method,) = objs
    return {
        "call": lambda: method(),
        "parts": lambda: (type(method.__self__).__name__, method.__func__.__name__),
    }


def probe_slots(objs):
    (cls,) = objs
    inst = cls(2, 3)
    return {
        "method": lambda: inst.total(),
        "slots": lambda: cls.__slots__,
        "instance_dict": lambda: hasattr(inst, "__dict__"),
        "other_attribute": lambda: setattr(inst, "c", 1),
        "slot_descriptor": lambda: type(vars(cls)["a"]).__name__,
    }


def probe_same_class_twice(objs):
    first, second, point = objs
    return {
        "same_class": lambda: first is second,
        "instance_class": lambda: (type(point) is first, isinstance(point, second)),
        "instance": lambda: point.norm1(),
        "new_instance": lambda: first(3, 4).norm1(),
    }


def probe_class_in_function(objs):
    (cls,) = objs
    counter = cls()
    return {
        "steps": lambda: (counter.step(), counter.step()),
        "name": lambda: cls.__name__,
        "qualname": lambda: cls.__qualname__,
    }


def probe_metaclass(objs):
    (cls,) = objs
    inst = cls(5)
    return {
        "metaclass": lambda: type(cls).__name__,
        "meta_method": lambda: cls.describe(),
        "meta_call": lambda: (inst.made_by, inst.v),
    }


def probe_exception_class(objs):
    cls, exc = objs

    def raise_and_catch():
        try:
            raise cls("raised")
        except ValueError as caught:
            return str(caught)

    return {
        "instance": lambda: (isinstance(exc, cls), str(exc), exc.args),
        "raise": raise_and_catch,
        "mro": lambda: type_names(cls.__mro__),
    }


def probe_abc(objs):
    ((shape, square, virtual),) = objs
    return {
        "abstract": lambda: shape(),
        "concrete": lambda: (square(3).area(), square(3).twice()),
        "isinstance": lambda: isinstance(square(1), shape),
        "registered": lambda: (issubclass(virtual, shape), isinstance(virtual(), shape)),
        "not_registered": lambda: issubclass(int, shape),
        "abstract_methods": lambda: (
            sorted(shape.__abstractmethods__),
            sorted(square.__abstractmethods__),
        ),
    }


# --- enums --------------------------------------------------------------------


def probe_enum(objs):
    color, blue, again = objs
    return {
        "same_class": lambda: color is again,
        "member_identity": lambda: (blue is color.BLUE, blue is color("b"), blue is color["BLUE"]),
        "members": lambda: [(m.name, m.value) for m in color],
        "method": lambda: blue.shout(),
        "classmethod": lambda: color.default() is color.GREEN,
        "names": lambda: (color.__name__, color.__qualname__, color.__module__),
        "metaclass": lambda: type(color).__name__,
        "isinstance": lambda: isinstance(blue, color),
        "lookup_error": lambda: color("nope"),
    }


def probe_int_enum(objs):
    (prio,) = objs
    return {
        "members": lambda: [(m.name, int(m)) for m in prio],
        "arithmetic": lambda: prio.HIGH + 1,
        "lookup": lambda: (prio(2).name, prio["MEDIUM"] == 2),
        "order": lambda: (prio.LOW < prio.HIGH, sorted([prio.HIGH, prio.LOW]) == [1, 3]),
    }


def probe_flag(objs):
    perm, rw = objs
    return {
        "members": lambda: [(m.name, m.value) for m in (perm.R, perm.W, perm.X)],
        "combined": lambda: (rw.value, type(rw) is perm, rw == perm.R | perm.W),
        "contains": lambda: (perm.R in rw, perm.X in rw),
        "intersection": lambda: (rw & perm.W) is perm.W,
    }


# --- dataclasses and typing ---------------------------------------------------


def probe_dataclass(objs):
    cls, item = objs
    return {
        "init": lambda: cls("a", 2, scale=3).qty,
        "repr": lambda: repr(cls("a", 2, scale=3)),
        "order": lambda: cls("a") < cls("b"),
        "default_factory": lambda: cls("a").tags is not cls("a").tags,
        "classvar": lambda: cls.LIMIT,
        "is_dataclass": lambda: dataclasses.is_dataclass(cls),
        "fields": lambda: [(f.name, repr(f.type)) for f in dataclasses.fields(cls)],
        "astuple": lambda: dataclasses.astuple(cls("a", 2, scale=3)),
        "instance": lambda: (type(item) is cls, item.name, item.qty, item.tags),
        "asdict": lambda: dataclasses.asdict(item),
    }


def probe_frozen_dataclass(objs):
    (cls,) = objs
    value = cls(1, (2, 3))
    return {
        "frozen": lambda: setattr(value, "a", 5),
        "eq_hash": lambda: (value == cls(1, (2, 3)), hash(value) == hash(cls(1, (2, 3)))),
        "repr": lambda: repr(value),
        "fields": lambda: [f.name for f in dataclasses.fields(cls)],
    }


def probe_namedtuple(objs):
    (pair, triple), one = objs
    return {
        "typing_namedtuple": lambda: (tuple(pair(1)), pair(2, "q").swap()),
        "typing_fields": lambda: (pair._fields, pair._field_defaults),
        "annotations": lambda: reprs(pair.__annotations__),
        "collections_namedtuple": lambda: (tuple(triple(1, 2)), triple._fields),
        "asdict": lambda: dict(triple(1, 2, 3)._asdict()),
        "instance": lambda: (type(one) is pair, tuple(one), one.b),
    }


def probe_typeddict(objs):
    (movie,) = objs
    return {
        "call": lambda: movie(title="x", year=1),
        "annotations": lambda: reprs(movie.__annotations__),
        "keys": lambda: (sorted(movie.__required_keys__), movie.__total__),
    }


def probe_generic(objs):
    (box,) = objs
    return {
        "instance": lambda: box(3).get(),
        "parameters": lambda: [p.__name__ for p in box.__parameters__],
        "subscript": lambda: (repr(box[int]), typing.get_origin(box[int]) is box),
        "orig_bases": lambda: [repr(b) for b in box.__orig_bases__],
    }


def probe_typevar(objs):
    first, second, (bounded, constrained) = objs
    return {
        "same_typevar": lambda: first is second,
        "reprs": lambda: (repr(first), repr(bounded), repr(constrained)),
        "bound": lambda: repr(bounded.__bound__),
        "constraints": lambda: repr(constrained.__constraints__),
        "variance": lambda: (constrained.__covariant__, constrained.__contravariant__),
    }


def probe_type_hints(objs):
    (hints,) = objs
    return {
        f"{index}": (
            lambda hint=hint: (
                repr(hint),
                repr(typing.get_origin(hint)),
                repr(typing.get_args(hint)),
            )
        )
        for index, hint in enumerate(hints)
    }


def probe_function_hints(objs):
    (f,) = objs
    return {
        "call": lambda: f([1, 2]),
        "get_type_hints": lambda: reprs(typing.get_type_hints(f)),
        "annotations": lambda: reprs(f.__annotations__),
    }


# --- modules ------------------------------------------------------------------


def probe_dynamic_module(objs):
    (module,) = objs
    return {
        "type": lambda: type(module) is types.ModuleType,
        "names": lambda: (module.__name__, module.__doc__),
        "contents": lambda: (module.CONST, module.f(1), module.K().v()),
        "not_imported": lambda: module.__name__ in sys.modules,
        "functions_share_module_namespace": lambda: module.f.__globals__ is vars(module),
    }


def probe_function_using_dynamic_module(objs):
    (f,) = objs
    module = f.__globals__["DYNAMIC_MODULE"]
    return {
        "call": lambda: f(1),
        "module": lambda: (module.__name__, type(module) is types.ModuleType),
    }


def probe_modules_by_reference(objs):
    (modules,) = objs
    return {"modules": lambda: [(m.__name__, sys.modules[m.__name__] is m) for m in modules]}


def probe_registered_module(objs):
    ((scaled, scaler),) = objs
    return {
        "function": lambda: (scaled(2), scaled.__module__, scaled.__globals__["SCALE"]),
        "class": lambda: (scaler(2).apply(5), scaler.__module__),
    }


# --- other objects ------------------------------------------------------------


def probe_mappingproxy(objs):
    (proxy,) = objs
    return {
        "type": lambda: type(proxy) is types.MappingProxyType,
        "contents": lambda: (sorted(proxy), proxy["k"], proxy["f"](3)),
        "read_only": lambda: operator.setitem(proxy, "x", 1),
    }


def _probe_views(objs):
    ((keys, values, items),) = objs
    return {
        "types": lambda: [type(v).__name__ for v in (keys, values, items)],
        "contents": lambda: (list(keys), list(values), list(items)),
    }


probe_dict_views = probe_ordered_dict_views = _probe_views


def probe_loggers(objs):
    import logging

    ((named, root),) = objs
    return {
        "named": lambda: (named is logging.getLogger("older.payloads"), named.name),
        "root": lambda: root is logging.getLogger(),
    }


def probe_descriptors(objs):
    ((prop, static, klass, getset),) = objs
    return {
        "property": lambda: (type(prop).__name__, prop.__doc__, prop.fget(None)),
        "staticmethod": lambda: (type(static).__name__, static.__func__()),
        "classmethod": lambda: (type(klass).__name__, klass.__func__(int)),
        "getset_descriptor": lambda: getset is types.FunctionType.__dict__["__code__"],
    }


def probe_builtin_types(objs):
    (classes,) = objs
    expected = (
        types.FunctionType,
        types.CodeType,
        types.CellType,
        types.MappingProxyType,
        types.SimpleNamespace,
        type(None),
        type(Ellipsis),
        type(NotImplemented),
    )
    return {
        "identity": lambda: [a is b for a, b in zip(classes, expected)],
        "names": lambda: type_names(classes),
    }


def probe_weakset(objs):
    ((cls, weak),) = objs
    return {"weakset": lambda: (type(weak).__name__, len(weak), cls in weak)}


def probe_memoryview(objs):
    (view,) = objs
    return {
        "type": lambda: type(view).__name__,
        "contents": lambda: (bytes(view), len(view)),
    }


def probe_file(objs):
    (f,) = objs
    return {
        "contents": lambda: f.read(),
        "name": lambda: f.name.endswith("text.txt"),
        "readable": lambda: f.readable(),
    }


PROBES = {
    "submodules": probe_submodules,
    "lambda": probe_lambda,
    "closure": probe_closure,
    "recursive_closure": probe_recursive_closure,
    "empty_cell": probe_empty_cell,
    "mutual_recursion": probe_mutual_recursion,
    "function_attributes": probe_function_attributes,
    "shared_globals": probe_shared_globals,
    "generators": probe_generators,
    "positional_only": probe_positional_only,
    "wrapped": probe_wrapped,
    "partial": probe_partial,
    "shared_in_container": probe_shared_in_container,
    "code_object": probe_code_object,
    "class_features": probe_class_features,
    "instance": probe_instance,
    "bound_method": probe_bound_method,
    "slots": probe_slots,
    "same_class_twice": probe_same_class_twice,
    "class_in_function": probe_class_in_function,
    "metaclass": probe_metaclass,
    "exception_class": probe_exception_class,
    "abc": probe_abc,
    "enum": probe_enum,
    "int_enum": probe_int_enum,
    "flag": probe_flag,
    "dataclass": probe_dataclass,
    "frozen_dataclass": probe_frozen_dataclass,
    "namedtuple": probe_namedtuple,
    "typeddict": probe_typeddict,
    "generic": probe_generic,
    "typevar": probe_typevar,
    "type_hints": probe_type_hints,
    "function_hints": probe_function_hints,
    "dynamic_module": probe_dynamic_module,
    "function_using_dynamic_module": probe_function_using_dynamic_module,
    "modules_by_reference": probe_modules_by_reference,
    "registered_module": probe_registered_module,
    "mappingproxy": probe_mappingproxy,
    "dict_views": probe_dict_views,
    "ordered_dict_views": probe_ordered_dict_views,
    "loggers": probe_loggers,
    "descriptors": probe_descriptors,
    "builtin_types": probe_builtin_types,
    "weakset": probe_weakset,
    "memoryview": probe_memoryview,
    "file": probe_file,
}


# --- the loading side ---------------------------------------------------------


def load_all(payload_dir):
    """``(outcomes, named)``: label -> outcome of its probe on the objects
    loaded from its payloads, and the sorted ``(module, name)`` pairs of the
    globals the payloads named."""
    import os
    import pickle

    named = set()

    class RecordingUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            named.add((module, name))
            return super().find_class(module, name)

    with open(os.path.join(payload_dir, "manifest.pkl"), "rb") as f:
        manifest = pickle.load(f)
    outcomes = {}
    for label in manifest["labels"]:
        if label in manifest["failures"]:
            continue
        objects = []
        try:
            for index in range(manifest["counts"][label]):
                with open(os.path.join(payload_dir, f"{label}.{index}.pkl"), "rb") as f:
                    objects.append(RecordingUnpickler(f).load())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            outcomes[label] = {"<load>": ("raised", type(exc).__name__, str(exc))}
            continue
        outcomes[label] = run_probe(PROBES[label], objects)
    return outcomes, sorted(named)


def main(payload_dir, result_path):
    import os
    import pickle

    # Neither the samples nor the module they registered for pickling by
    # value can be imported from there.
    os.chdir(payload_dir)
    outcomes, named = load_all(payload_dir)
    cloudpickle = sys.modules.get("cloudpickle")
    report = {
        "outcomes": outcomes,
        "named": named,
        "cloudpickle_version": getattr(cloudpickle, "__version__", None),
        "has_engine": hasattr(getattr(cloudpickle, "cloudpickle", None), "_engine"),
    }
    with open(result_path, "wb") as f:
        pickle.dump(report, f, protocol=4)


if __name__ == "__main__":
    main(*sys.argv[1:])
