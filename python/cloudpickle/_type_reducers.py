"""``_REDUCERS``, the table of cloudpickle's reducers by exact type that the
Pickler's dispatch table starts from (same keys as the reference's), and
the reference's other names of this family.

The reducers are the engine's functions (src/reduce/type_reducers.rs:
files, loggers, descriptors, methods, mapping proxies, memoryviews,
WeakSets, dictionary views, dataclass field sentinels; code objects in
code_reduction.rs, cells and modules in rules_api.rs, type variables in
typevar_reduction.rs), so that a caller gets exactly what ``dumps`` runs.
"""

import _collections_abc
import abc
import dataclasses
import enum
import io
import logging
import sys
import types
import typing
import weakref
from collections import OrderedDict

from ._engine import (
    _CODE_FIELDS,
    _DYNAMIC_CODE_FILENAME,
    _cell_reduce,
    _classmethod_reduce,
    _code_reduce,
    _copy_str,
    _copy_tuple,
    _dataclass_field_base_reduce,
    _dict_items_reduce,
    _dict_keys_reduce,
    _dict_values_reduce,
    _dynamic_code_filename,
    _file_reduce,
    _getset_descriptor_reduce,
    _logger_reduce,
    _mappingproxy_reduce,
    _memoryview_reduce,
    _method_reduce,
    _module_reduce,
    _odict_items_reduce,
    _odict_keys_reduce,
    _odict_values_reduce,
    _property_reduce,
    _root_logger_reduce,
    _typevar_reduce,
    _weakset_reduce,
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
