"""Load-side helpers that cloudpickle payloads call by name.

A payload that carries a function or a class by value does not contain any
executable code of ours: it contains references such as
``cloudpickle.cloudpickle._make_function`` that ``pickle.loads`` resolves by
importing the module and reading the attribute. Every helper defined here is
re-exported from :mod:`cloudpickle.cloudpickle` and claims that module as its
``__module__``, so that

* payloads written by this package name exactly what the pure-Python
  cloudpickle names, and load in a process that only has it installed;
* payloads written by the pure-Python cloudpickle load here.

The names and argument lists are therefore part of the wire format and must
not change. Installing the engine's bridge (at the end of
``cloudpickle.cloudpickle``'s import, src/bridge.rs) sets their
``__module__`` to ``_PUBLIC_MODULE``. Functions, cells and classes are
rebuilt by the engine's native reconstructors, bound here under their
names.
"""

import builtins
import dataclasses
import sys
import threading
import types
import typing
import weakref
from collections import OrderedDict

# Older payloads (and some client code) expect ``CellType`` to be reachable
# as ``cloudpickle.cloudpickle.CellType``.
from types import CellType

__all__ = [
    "_BUILTIN_TYPE_NAMES",
    "_DATACLASSE_FIELD_TYPE_SENTINELS",
    "_DYNAMIC_CLASS_TRACKER_BY_CLASS",
    "_DYNAMIC_CLASS_TRACKER_BY_ID",
    "_DYNAMIC_CLASS_TRACKER_LOCK",
    "CellType",
    "_builtin_type",
    "_class_setstate",
    "_empty_cell_value",
    "_file_reconstructor",
    "_function_setstate",
    "_get_cell_contents",
    "_get_dataclass_field_type_sentinel",
    "_lookup_class_or_track",
    "_make_cell",
    "_make_dict_items",
    "_make_dict_keys",
    "_make_dict_values",
    "_make_empty_cell",
    "_make_function",
    "_make_skeleton_class",
    "_make_skeleton_enum",
    "_make_typevar",
    "dynamic_subimport",
    "instance",
    "subimport",
]

# The module payloads use to designate the helpers below.
_PUBLIC_MODULE = "cloudpickle.cloudpickle"


# ---------------------------------------------------------------------------
# Identity of classes (and type variables) sent by value.
#
# A class pickled by value gets a tracker id the first time it is pickled
# (minted by ``_get_or_create_tracker_id``, on the pickling side). The
# loading process remembers which class it rebuilt for an id, so loading
# several payloads that carry the same class yields one class object
# (isinstance keeps working), and pickling a rebuilt class again reuses the
# id it arrived with.
# ---------------------------------------------------------------------------

_DYNAMIC_CLASS_TRACKER_BY_CLASS = weakref.WeakKeyDictionary()
_DYNAMIC_CLASS_TRACKER_BY_ID = weakref.WeakValueDictionary()
_DYNAMIC_CLASS_TRACKER_LOCK = threading.Lock()


def _lookup_class_or_track(class_tracker_id, class_def):
    """Return the class already known under ``class_tracker_id``; if there is
    none, make ``class_def`` the one and return it.

    A ``None`` id means "do not track": ``class_def`` is returned as is.
    """
    if class_tracker_id is None:
        return class_def
    with _DYNAMIC_CLASS_TRACKER_LOCK:
        known = _DYNAMIC_CLASS_TRACKER_BY_ID.setdefault(class_tracker_id, class_def)
        _DYNAMIC_CLASS_TRACKER_BY_CLASS[known] = class_tracker_id
        return known


# ---------------------------------------------------------------------------
# Modules.
# ---------------------------------------------------------------------------


def subimport(name):
    """Import the module called ``name`` (dotted names allowed) and return
    that very module, not its top-level package as ``__import__`` would."""
    __import__(name)
    return sys.modules[name]


def dynamic_subimport(name, vars):
    """Rebuild a module that cannot be imported on this side: a fresh module
    object called ``name`` whose namespace is ``vars`` plus the builtins."""
    module = types.ModuleType(name)
    namespace = module.__dict__
    namespace.update(vars)
    namespace["__builtins__"] = builtins.__dict__
    return module


# ``type(None)``-like classes that live in :mod:`types` but not in builtins:
# they are pickled as ``_builtin_type("<name in types>")``.
_BUILTIN_TYPE_NAMES = {value: key for key, value in vars(types).items() if type(value) is type}


def _builtin_type(name):
    """Return the class called ``name`` in :mod:`types` (``"ClassType"``,
    from very old payloads, means ``type``)."""
    if name == "ClassType":
        return type
    return getattr(types, name)


# ---------------------------------------------------------------------------
# Cells and functions.
# ---------------------------------------------------------------------------


def instance(cls):
    """Class decorator turning a class statement into its only instance."""
    return cls()


@instance
class _empty_cell_value:
    """Marker standing for "this cell holds nothing".

    It pickles as a reference to itself, so the marker keeps its identity
    through a round trip.
    """

    __module__ = _PUBLIC_MODULE

    @classmethod
    def __reduce__(cls):
        return cls.__name__


def _get_cell_contents(cell):
    """The value held by ``cell``, or :data:`_empty_cell_value` when the cell
    is empty."""
    try:
        return cell.cell_contents
    except ValueError:
        return _empty_cell_value


# Functions, cells and class skeletons are rebuilt by the engine's native
# reconstructors (src/reconstruct.rs, src/reconstruct_class.rs): same
# names, arguments and behaviour as the reference's, bound here so that
# every reconstructor is importable from this module.
# ``_make_skeleton_class(type_constructor, name, bases, type_kwargs,
# class_tracker_id, extra)`` creates a class as ``types.new_class`` would
# (or returns the one the class tracker below already holds under the same
# id), and ``_class_setstate(obj, state)`` fills its namespace.
from ._engine import (  # noqa: E402
    _class_setstate,
    _function_setstate,
    _make_cell,
    _make_empty_cell,
    _make_function,
    _make_skeleton_class,
)

# ---------------------------------------------------------------------------
# Classes, enums and type variables.
# ---------------------------------------------------------------------------


def _make_skeleton_enum(bases, name, qualname, members, module, class_tracker_id, extra):
    """Create an enum class with its members (``{name: value}``) but no other
    attributes; :func:`_class_setstate` adds the rest.

    The enum's metaclass is that of its last base (the ``Enum`` base always
    comes last). When the tracker id designates an enum already rebuilt in
    this process, that enum is returned instead.
    """
    metacls = type(bases[-1])
    namespace = metacls.__prepare__(name, bases)
    for member_name, member_value in members.items():
        namespace[member_name] = member_value
    enum_class = metacls.__new__(metacls, name, bases, namespace)
    enum_class.__module__ = module
    enum_class.__qualname__ = qualname
    return _lookup_class_or_track(class_tracker_id, enum_class)


def _make_typevar(name, bound, constraints, covariant, contravariant, class_tracker_id):
    """Rebuild a ``typing.TypeVar`` (or reuse the one already rebuilt under
    the same tracker id)."""
    typevar = typing.TypeVar(
        name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant
    )
    return _lookup_class_or_track(class_tracker_id, typevar)


# ---------------------------------------------------------------------------
# Dictionary views.
# ---------------------------------------------------------------------------


def _make_dict_keys(obj, is_ordered=False):
    """A keys view over the items of ``obj`` (of an OrderedDict when
    ``is_ordered``). Only the keys travel, not the dict they came from."""
    factory = OrderedDict if is_ordered else dict
    return factory.fromkeys(obj).keys()


def _make_dict_values(obj, is_ordered=False):
    """A values view over the items of ``obj`` (of an OrderedDict when
    ``is_ordered``), keyed by position."""
    factory = OrderedDict if is_ordered else dict
    return factory(enumerate(obj)).values()


def _make_dict_items(obj, is_ordered=False):
    """An items view of the dict ``obj`` (copied into an OrderedDict when
    ``is_ordered``)."""
    if is_ordered:
        return OrderedDict(obj).items()
    return obj.items()


# ---------------------------------------------------------------------------
# Miscellaneous.
# ---------------------------------------------------------------------------


def _file_reconstructor(retval):
    """Identity: a pickled file arrives as an ``io.StringIO`` holding its
    contents; this call just hands it back."""
    return retval


# dataclasses compares the type of its fields with these private sentinels by
# identity: they are pickled by name and looked up here.
_DATACLASSE_FIELD_TYPE_SENTINELS = {
    sentinel.name: sentinel
    for sentinel in (
        dataclasses._FIELD,
        dataclasses._FIELD_CLASSVAR,
        dataclasses._FIELD_INITVAR,
    )
}


def _get_dataclass_field_type_sentinel(name):
    """The dataclasses field-type sentinel called ``name``."""
    return _DATACLASSE_FIELD_TYPE_SENTINELS[name]
