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
not change. Nothing in this module depends on the Rust extension.
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


def _cell_from_closure():
    # Fallback for interpreters whose CellType cannot be instantiated: the
    # closure of this lambda holds the never-assigned local ``cell``.
    if False:  # pragma: no cover - never executed, only compiled
        cell = None
    return (lambda: cell).__closure__[0]


def _make_empty_cell():
    """Return a new cell that holds no value."""
    try:
        return CellType()
    except TypeError:  # pragma: no cover - CPython supports CellType()
        return _cell_from_closure()


def _make_cell(value=_empty_cell_value):
    """Return a new cell holding ``value``; an empty one when ``value`` is
    omitted (or is the :data:`_empty_cell_value` marker)."""
    cell = _make_empty_cell()
    if value is not _empty_cell_value:
        cell.cell_contents = value
    return cell


def _make_function(code, globals, name, argdefs, closure):
    """Create the skeleton of a function sent by value.

    ``globals`` is the (possibly shared) namespace the function will run in;
    ``closure`` is a tuple of empty cells or None. The real defaults, closure
    contents, globals and attributes arrive later through
    :func:`_function_setstate`, once the function exists and is memoized, so
    that self- and mutually-recursive functions can be rebuilt.
    """
    # Make the builtins explicit: some interpreters (nogil) do not fall back
    # to the caller's builtins when the globals lack them.
    globals["__builtins__"] = builtins.__dict__
    return types.FunctionType(code, globals, name, argdefs, closure)


# Entries of a function's slot state that need special treatment; every other
# entry is a plain writable attribute, set with setattr in payload order.
_FUNCTION_SPECIAL_SLOTS = frozenset(("__globals__", "__closure__", "_cloudpickle_submodules"))


def _function_setstate(obj, state):
    """Give a function built by :func:`_make_function` its state.

    ``state`` is ``(attributes, slotstate)``: ``attributes`` goes into the
    function's ``__dict__``; ``slotstate`` holds the referenced globals
    (merged into the function's namespace), the closure values (copied into
    the function's own cells, which are read-only as a tuple), the
    submodules the code needs (already imported by unpickling them: nothing
    left to do) and plain attributes such as ``__qualname__``,
    ``__defaults__`` or ``__doc__``.
    """
    attributes, slotstate = state
    obj.__dict__.update(attributes)

    namespace = obj.__globals__
    namespace.update(slotstate["__globals__"])
    namespace["__builtins__"] = builtins.__dict__

    shipped_cells = slotstate["__closure__"]
    if shipped_cells is not None:
        for own_cell, shipped in zip(obj.__closure__, shipped_cells):
            value = _get_cell_contents(shipped)
            if value is not _empty_cell_value:
                own_cell.cell_contents = value

    for attr, value in slotstate.items():
        if attr not in _FUNCTION_SPECIAL_SLOTS:
            setattr(obj, attr, value)


# ---------------------------------------------------------------------------
# Classes, enums and type variables.
# ---------------------------------------------------------------------------


def _make_skeleton_class(type_constructor, name, bases, type_kwargs, class_tracker_id, extra):
    """Create a class with the right metaclass, name and bases but (almost)
    nothing in its namespace; :func:`_class_setstate` fills it once the class
    is memoized, which allows methods that refer to their own class.

    ``type_kwargs`` is the namespace the class is created with (typically
    ``__module__``); ``extra`` is reserved for future use. When the tracker
    id designates a class already rebuilt in this process, that class is
    returned instead.
    """
    # Keys set on a class get interned by CPython; intern them up front so a
    # class rebuilt here pickles the same way as one defined here.
    namespace = {sys.intern(key): value for key, value in type_kwargs.items()}
    if (
        type_constructor is type
        and "__module__" in namespace
        and all(type(base) is type for base in bases)
    ):
        # The common case, without types.new_class's generic machinery: with
        # ``type`` as metaclass and plain classes as bases, there are no
        # ``__mro_entries__`` to resolve, no more derived metaclass to find
        # and no ``__prepare__`` to call. (Without ``__module__``, as in old
        # payloads, type() would take it from this module's globals where
        # new_class gives "types": keep new_class's behaviour then.)
        skeleton = type(name, bases, namespace)
    else:

        def fill(ns):
            ns.update(namespace)

        skeleton = types.new_class(name, bases, {"metaclass": type_constructor}, fill)
    return _lookup_class_or_track(class_tracker_id, skeleton)


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


def _class_setstate(obj, state):
    """Fill the namespace of a class made by :func:`_make_skeleton_class` or
    :func:`_make_skeleton_enum`, and return it.

    ``state`` is ``(class_dict, slotstate)``. The ``_abc_impl`` entry, when
    present, is the list of classes registered as virtual subclasses of an
    ABC: they are registered again rather than assigned.
    """
    class_dict, _slotstate = state
    abc_registry = None
    for attr, value in class_dict.items():
        if attr == "_abc_impl":
            abc_registry = value
            continue
        setattr(obj, attr, value)

    # Python 3.13 records ``__firstlineno__`` on classes, and assigning any
    # attribute to a class deletes it: put it back last.
    if sys.version_info >= (3, 13) and "__firstlineno__" in class_dict:
        obj.__firstlineno__ = class_dict["__firstlineno__"]

    if abc_registry is not None:
        for subclass in abc_registry:
            obj.register(subclass)
    return obj


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


# Payloads must name these helpers through the public module, whatever file
# they are defined in.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, types.FunctionType):
        _obj.__module__ = _PUBLIC_MODULE
del _name, _obj
