"""Reducers of the other types the standard pickle does not handle (or not
the way wanted): files, loggers, descriptors, dictionary views..., and
``_REDUCERS``, the table of them by exact type that the Pickler's dispatch
table starts from (same keys as the reference's).

Code objects, cells and modules are reduced by the engine (``_code_reduce``
with its helpers ``_copy_str``, ``_copy_tuple``, ``_dynamic_code_filename``
and the constructor's parameters ``_CODE_FIELDS``, ``_cell_reduce`` and
``_module_reduce`` are its functions), and so are type variables
(``_typevar_reduce``).
"""

import _collections_abc
import abc
import dataclasses
import enum
import io
import logging
import pickle
import sys
import types
import typing
import weakref
from collections import OrderedDict

from ._engine import (
    _CODE_FIELDS,
    _DYNAMIC_CODE_FILENAME,
    _cell_reduce,
    _code_reduce,
    _copy_str,
    _copy_tuple,
    _dynamic_code_filename,
    _module_reduce,
    _typevar_reduce,
)
from ._reconstructors import (
    _file_reconstructor,
    _get_dataclass_field_type_sentinel,
    _make_dict_items,
    _make_dict_keys,
    _make_dict_values,
)

__all__ = [
    "Enum",
    "OrderedDict",
    "is_tornado_coroutine",
    "_CODE_FIELDS",
    "_DYNAMIC_CODE_FILENAME",
    "_REDUCERS",
    "_cell_reduce",
    "_classmethod_reduce",
    "_code_reduce",
    "_copy_str",
    "_copy_tuple",
    "_dataclass_field_base_reduce",
    "_dict_items_reduce",
    "_dict_keys_reduce",
    "_dict_values_reduce",
    "_dynamic_code_filename",
    "_file_reduce",
    "_getset_descriptor_reduce",
    "_logger_reduce",
    "_mappingproxy_reduce",
    "_memoryview_reduce",
    "_method_reduce",
    "_module_reduce",
    "_odict_items_reduce",
    "_odict_keys_reduce",
    "_odict_values_reduce",
    "_property_reduce",
    "_root_logger_reduce",
    "_weakset_reduce",
]

Enum = enum.Enum


def is_tornado_coroutine(func):
    """Whether ``func`` is a Tornado coroutine function (False when Tornado
    is not imported, or too old to tell). Deprecated since cloudpickle 3.0,
    with the reference's warning: call ``tornado.gen.is_coroutine_function``
    instead."""
    import warnings

    warnings.warn(
        "is_tornado_coroutine is deprecated in cloudpickle 3.0 and will be "
        "removed in cloudpickle 4.0. Use tornado.gen.is_coroutine_function "
        "directly instead.",
        category=DeprecationWarning,
        # The reference's (default) level: the warning points here, so the
        # default filters hide it outside of tests, as with the reference.
        stacklevel=1,
    )
    gen = sys.modules.get("tornado.gen")
    if gen is None or not hasattr(gen, "is_coroutine_function"):
        return False
    return gen.is_coroutine_function(func)


# ---------------------------------------------------------------------------
# Methods.
# ---------------------------------------------------------------------------


def _classmethod_reduce(obj):
    """A classmethod or staticmethod (or a subclass): rebuilt by calling its
    type on the wrapped function."""
    return type(obj), (obj.__func__,)


def _method_reduce(obj):
    """A bound method: ``types.MethodType(function, self)``.

    On PyPy, builtin methods (``[].append``, ``dict.fromkeys``) are bound
    methods of functions without bytecode, which cannot travel by value:
    those are looked up again on their object, ``getattr(self, name)``, as
    CPython's builtin methods reduce themselves."""
    func = obj.__func__
    if type(func) is types.FunctionType and type(func.__code__) is not types.CodeType:
        return getattr, (obj.__self__, obj.__name__)
    return types.MethodType, (func, obj.__self__)


# ---------------------------------------------------------------------------
# Other types the standard pickle does not handle (or not the way wanted).
# ---------------------------------------------------------------------------


def _file_reduce(obj):
    """An open text file travels as an ``io.StringIO`` holding its whole
    contents, positioned where the file was; ``sys.stdout`` and
    ``sys.stderr`` travel by reference."""
    if not hasattr(obj, "name") or not hasattr(obj, "mode"):
        raise pickle.PicklingError("Cannot pickle files that do not map to an actual file")
    if obj is sys.stdout:
        return getattr, (sys, "stdout")
    if obj is sys.stderr:
        return getattr, (sys, "stderr")
    if obj is sys.stdin:
        raise pickle.PicklingError("Cannot pickle standard input")
    if obj.closed:
        raise pickle.PicklingError("Cannot pickle closed files")
    if hasattr(obj, "isatty") and obj.isatty():
        raise pickle.PicklingError("Cannot pickle files that map to tty objects")
    if "r" not in obj.mode and "+" not in obj.mode:
        raise pickle.PicklingError(
            f"Cannot pickle files that are not opened for reading: {obj.mode}"
        )

    name = obj.name
    try:
        position = obj.tell()
        obj.seek(0)
        contents = obj.read()
        obj.seek(position)
    except OSError as exc:
        raise pickle.PicklingError(f"Cannot pickle file {name} as it cannot be read") from exc

    copy = io.StringIO()
    copy.write(contents)
    copy.seek(position)
    copy.name = name
    return _file_reconstructor, (copy,)


def _logger_reduce(obj):
    """A logger is looked up again by name."""
    return logging.getLogger, (obj.name,)


def _root_logger_reduce(obj):
    """The root logger: ``logging.getLogger()``."""
    return logging.getLogger, ()


def _memoryview_reduce(obj):
    """A memoryview travels as the bytes it shows."""
    return bytes, (obj.tobytes(),)


def _property_reduce(obj):
    """A property (or abstractproperty): rebuilt from its accessors and doc."""
    return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)


def _getset_descriptor_reduce(obj):
    """A getset descriptor (``type.__dict__["__dict__"]``...): looked up on
    the class that owns it."""
    return getattr, (obj.__objclass__, obj.__name__)


def _mappingproxy_reduce(obj):
    """A read-only mapping proxy over a copy of the mapping."""
    return types.MappingProxyType, (dict(obj),)


def _weakset_reduce(obj):
    """A WeakSet of the objects alive now."""
    return weakref.WeakSet, (list(obj),)


# Dictionary views: only what the view shows travels (not the whole dict).


def _dict_keys_reduce(obj):
    return _make_dict_keys, (list(obj),)


def _dict_values_reduce(obj):
    return _make_dict_values, (list(obj),)


def _dict_items_reduce(obj):
    return _make_dict_items, (dict(obj),)


def _odict_keys_reduce(obj):
    return _make_dict_keys, (list(obj), True)


def _odict_values_reduce(obj):
    return _make_dict_values, (list(obj), True)


def _odict_items_reduce(obj):
    return _make_dict_items, (dict(obj), True)


def _dataclass_field_base_reduce(obj):
    """The field-type sentinels of :mod:`dataclasses` are compared by
    identity: they travel by name."""
    return _get_dataclass_field_type_sentinel, (obj.name,)


# ---------------------------------------------------------------------------
# The type-specific reducers, by exact type (merged into the Pickler's
# dispatch table). Same keys as the pure-Python cloudpickle's table.
# ---------------------------------------------------------------------------

_REDUCERS = {
    classmethod: _classmethod_reduce,
    io.TextIOWrapper: _file_reduce,
    logging.Logger: _logger_reduce,
    logging.RootLogger: _root_logger_reduce,
    memoryview: _memoryview_reduce,
    property: _property_reduce,
    staticmethod: _classmethod_reduce,
    types.CellType: _cell_reduce,
    types.CodeType: _code_reduce,
    types.GetSetDescriptorType: _getset_descriptor_reduce,
    types.ModuleType: _module_reduce,
    types.MethodType: _method_reduce,
    types.MappingProxyType: _mappingproxy_reduce,
    weakref.WeakSet: _weakset_reduce,
    typing.TypeVar: _typevar_reduce,
    _collections_abc.dict_keys: _dict_keys_reduce,
    _collections_abc.dict_values: _dict_values_reduce,
    _collections_abc.dict_items: _dict_items_reduce,
    type(OrderedDict().keys()): _odict_keys_reduce,
    type(OrderedDict().values()): _odict_values_reduce,
    type(OrderedDict().items()): _odict_items_reduce,
    # A function, not a type: never matches an object's type, but kept so
    # that the table has the same keys as the pure-Python one.
    abc.abstractmethod: _classmethod_reduce,
    dataclasses._FIELD_BASE: _dataclass_field_base_reduce,
}
# Deprecated subclasses of classmethod, staticmethod and property, while
# they exist.
for _legacy, _reducer in (
    ("abstractclassmethod", _classmethod_reduce),
    ("abstractstaticmethod", _classmethod_reduce),
    ("abstractproperty", _property_reduce),
):
    if hasattr(abc, _legacy):
        _REDUCERS[getattr(abc, _legacy)] = _reducer
del _legacy, _reducer
