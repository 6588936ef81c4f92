"""Classes, enums and type variables pickled by value: their reduce tuples
(a skeleton rebuilt by ``_make_skeleton_class``/``_make_skeleton_enum`` and
filled by ``_class_setstate``), and the class namespaces they carry.

The engine calls ``_dynamic_class_reduce`` (through the bridge) once it has
decided, in Rust (src/by_value.rs), that a class goes by value; it caches
the reduction while the class is unchanged. ``_class_reduce`` is the
reducer direct callers use, built on the same decision. Type variables are
reduced by the engine (``_typevar_reduce`` and ``_decompose_typevar`` are
its functions, src/typevar_reduction.rs).
"""

import abc
import enum
import sys
import types
import typing

from ._determinism import _canonical_dataclass_doc, _get_or_create_tracker_id
from ._engine import (
    _class_setstate,
    _decompose_typevar,
    _make_skeleton_class,
    _should_pickle_by_reference,
    _typevar_reduce,
)
from ._reconstructors import (
    _BUILTIN_TYPE_NAMES,
    _builtin_type,
    _make_skeleton_enum,
)

__all__ = [
    "_class_getnewargs",
    "_class_getstate",
    "_class_reduce",
    "_decompose_typevar",
    "_dynamic_class_reduce",
    "_enum_getnewargs",
    "_enum_getstate",
    "_extract_class_dict",
    "_get_bases",
    "_typevar_reduce",
]


def _get_bases(typ):
    """The bases a class is rebuilt with: ``__orig_bases__`` when the class
    itself defines it (generic subclasses, PEP 560), else ``__bases__``."""
    if "__orig_bases__" in getattr(typ, "__dict__", {}):
        return typ.__orig_bases__
    return typ.__bases__


def _extract_class_dict(cls):
    """A copy of ``cls.__dict__`` (keys sorted, as non-interned copies)
    without the entries that are the very same object in the bases'
    namespaces (what the class merely inherits)."""
    own = cls.__dict__
    class_dict = {"".join(key): own[key] for key in sorted(own)}

    bases = cls.__bases__
    if len(bases) == 1:
        inherited = bases[0].__dict__
    else:
        inherited = {}
        # Earlier bases win, as in the method resolution order.
        for base in reversed(bases):
            inherited.update(base.__dict__)

    _missing = object()
    return {
        key: value for key, value in class_dict.items() if inherited.get(key, _missing) is not value
    }


def _class_getnewargs(obj):
    """Arguments of ``_make_skeleton_class`` for the class ``obj``."""
    type_kwargs = {}
    if "__module__" in obj.__dict__:
        type_kwargs["__module__"] = obj.__module__
    dict_descriptor = obj.__dict__.get("__dict__", None)
    if isinstance(dict_descriptor, property):
        type_kwargs["__dict__"] = dict_descriptor
    return (
        type(obj),
        obj.__name__,
        _get_bases(obj),
        type_kwargs,
        _get_or_create_tracker_id(obj),
        None,
    )


def _enum_getnewargs(obj):
    """Arguments of ``_make_skeleton_enum`` for the enum class ``obj``."""
    members = {member.name: member.value for member in obj}
    return (
        obj.__bases__,
        obj.__name__,
        obj.__qualname__,
        members,
        obj.__module__,
        _get_or_create_tracker_id(obj),
        None,
    )


# Entries of an ABC's namespace that are caches rebuilt by isinstance and
# issubclass checks (pure-Python ``_py_abc`` layout): never shipped.
_ABC_CACHE_KEYS = ("_abc_cache", "_abc_negative_cache", "_abc_negative_cache_version")


def _sorted_classes(classes):
    """Live classes of a weak registry, by qualified name: a set's order
    changes from run to run, and payloads should not."""
    live = [c for c in classes if c is not None]
    return sorted(live, key=lambda c: (str(c.__module__), c.__qualname__))


def _abc_registered_subclasses(cls, class_dict):
    """The classes registered as virtual subclasses of the ABC ``cls``, as a
    list; the ABC bookkeeping entries are removed from ``class_dict``."""
    for key in _ABC_CACHE_KEYS:
        class_dict.pop(key, None)
    registry = class_dict.pop("_abc_registry", None)
    if registry is not None:
        # _py_abc: the registry is a WeakSet of classes.
        return _sorted_classes(registry)
    # The C implementation keeps registry and caches in one opaque
    # ``_abc_impl`` object; abc._get_dump exposes the registry as a set of
    # weak references.
    class_dict.pop("_abc_impl", None)
    weak_registry = abc._get_dump(cls)[0]
    return _sorted_classes(ref() for ref in weak_registry)


def _class_getstate(obj):
    """State of a class sent by value: ``(class_dict, {})``, applied by
    ``_class_setstate`` once the skeleton class exists.

    ``class_dict`` holds the class's own namespace entries (see
    :func:`_extract_class_dict`) minus what the skeleton recreates by itself:
    the ``__dict__``/``__weakref__`` descriptors, the member descriptors of
    ``__slots__``, and ABC caches. For ABCs, ``_abc_impl`` becomes the list of
    registered virtual subclasses, which ``_class_setstate`` registers again.
    """
    class_dict = _extract_class_dict(obj)
    class_dict.pop("__weakref__", None)

    # Python 3.15 generates a dataclass's docstring lazily (a descriptor that
    # replaces itself on first access): it travels as it is, and is computed
    # on the loading side.
    doc = class_dict.get("__doc__")
    if "__dataclass_fields__" in class_dict and isinstance(doc, str) and "{" in doc:
        doc = _canonical_dataclass_doc(obj, class_dict["__doc__"])
        if doc is not None:
            class_dict["__doc__"] = doc

    if issubclass(type(obj), abc.ABCMeta):
        class_dict["_abc_impl"] = _abc_registered_subclasses(obj, class_dict)

    if "__slots__" in class_dict:
        # The skeleton's metaclass creates the member descriptors from the
        # __slots__ entry again: shipping them would be redundant.
        slots = obj.__slots__
        if isinstance(slots, str):
            class_dict.pop(slots)
        else:
            for slot in slots:
                class_dict.pop(slot, None)

    # A getset descriptor, not picklable (and recreated by type()).
    class_dict.pop("__dict__", None)

    if sys.version_info >= (3, 14):
        class_dict = _class_dict_with_annotations(obj, class_dict)

    return class_dict, {}


def _class_dict_with_annotations(obj, class_dict):
    """Python 3.14+ (PEP 649/749): ``class_dict`` with the class's annotations
    evaluated into an ``__annotations__`` entry, in place of the annotate
    function (it closes over the class namespace, and the reference
    cloudpickle drops it, losing the annotations) and of the cache Python
    fills on first access.

    The annotate function is called now (the class is not modified), in the
    FORWARDREF format: a name that cannot be resolved yet becomes an
    ``annotationlib.ForwardRef`` instead of failing. The loading side (this
    package's ``_class_setstate`` or the reference's) assigns
    ``__annotations__``, which Python 3.14 accepts on any class.
    """
    annotate = class_dict.pop("__annotate_func__", None)
    cached = class_dict.pop("__annotations_cache__", None)
    if "__annotations__" in class_dict:
        # Stored eagerly (``from __future__ import annotations``, or assigned
        # in the class body): it travels as it is.
        return class_dict
    if isinstance(cached, dict):
        annotations = cached
    elif callable(annotate):
        import annotationlib

        try:
            annotations = annotationlib.call_annotate_function(
                annotate, annotationlib.Format.FORWARDREF, owner=obj
            )
        except Exception:  # noqa: BLE001 - as the reference: not carried
            return class_dict
        if not isinstance(annotations, dict):
            return class_dict
    else:
        return class_dict
    class_dict["__annotations__"] = _portable_annotations(annotations, annotate, obj)
    # Keys stay sorted, as _extract_class_dict made them.
    return {key: class_dict[key] for key in sorted(class_dict)}


# Slots of annotationlib.ForwardRef that hold evaluation context or caches
# (module globals, cells, compiled code): not carried.
_FORWARD_REF_CONTEXT = frozenset(
    (
        "__globals__",
        "__cell__",
        "__code__",
        "__ast_node__",
        "__stringifier_dict__",
        "__resolved_str_cache__",
    )
)


def _portable_annotations(annotations, annotate, owner):
    """A copy of ``annotations`` whose ``ForwardRef`` objects, at any depth
    of generic aliases and unions, are replaced by ones holding only their
    text, module, owner, class-scope flag and extra names: what makes two of
    them equal when they hold no globals or cells, and what can be pickled
    (the originals may hold module globals, cells and cached code objects).
    A value whose forward references sit in something this cannot rebuild
    becomes a single ``ForwardRef`` of its source text."""
    import annotationlib

    strings = None
    portable = {}
    for key, value in annotations.items():
        new = _portable_annotation(value, annotationlib.ForwardRef)
        if _holds_context(new, annotationlib.ForwardRef):
            if strings is None:
                strings = (
                    annotationlib.call_annotate_function(
                        annotate, annotationlib.Format.STRING, owner=owner
                    )
                    if callable(annotate)
                    else {}
                )
            text = strings.get(key)
            if not isinstance(text, str):
                text = annotationlib.type_repr(value)
            new = annotationlib.ForwardRef(text, module=getattr(owner, "__module__", None))
        portable[key] = new
    return portable


def _portable_annotation(value, forward_ref):
    kind = type(value)
    if kind is forward_ref:
        clean = object.__new__(forward_ref)
        for slot in _forward_ref_slots():
            setattr(clean, slot, None if slot in _FORWARD_REF_CONTEXT else getattr(value, slot))
        return clean
    if kind is list or kind is tuple:
        items = [_portable_annotation(item, forward_ref) for item in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return kind(items)
    args = getattr(value, "__args__", None)
    if not isinstance(args, tuple) or not args:
        return value
    new_args = _portable_annotation(args, forward_ref)
    if new_args is args:
        return value
    try:
        if isinstance(value, types.GenericAlias):
            return kind(value.__origin__, new_args)
        if isinstance(value, types.UnionType) or getattr(value, "__origin__", None) is typing.Union:
            return typing.Union[new_args]
        copy_with = getattr(value, "copy_with", None)
        if copy_with is not None:
            return copy_with(new_args)
    except Exception:  # noqa: BLE001 - left as it is; caught by _holds_context
        pass
    return value


def _forward_ref_slots():
    import annotationlib

    return [slot for slot in annotationlib._SLOTS if slot != "__weakref__"]


def _holds_context(value, forward_ref, depth=0):
    """Whether a ``ForwardRef`` holding evaluation context remains in
    ``value`` (searched through ``__args__``, lists and tuples)."""
    if depth > 50:
        return True
    if type(value) is forward_ref:
        return any(getattr(value, slot, None) is not None for slot in _FORWARD_REF_CONTEXT)
    if type(value) in (list, tuple):
        return any(_holds_context(item, forward_ref, depth + 1) for item in value)
    args = getattr(value, "__args__", None)
    if isinstance(args, tuple):
        return any(_holds_context(item, forward_ref, depth + 1) for item in args)
    return False


# Attributes of an Enum class that its metaclass computes from the members
# given to _make_skeleton_enum.
_ENUM_METACLASS_KEYS = (
    "_generate_next_value_",
    "_member_names_",
    "_member_map_",
    "_member_type_",
    "_value2member_map_",
)


def _enum_getstate(obj):
    """State of an enum class sent by value: that of :func:`_class_getstate`
    without the members and the bookkeeping the enum metaclass rebuilds."""
    class_dict, slotstate = _class_getstate(obj)
    for key in _ENUM_METACLASS_KEYS:
        class_dict.pop(key, None)
    for member in obj:
        class_dict.pop(member.name)
    return class_dict, slotstate


def _dynamic_class_reduce(obj):
    """Reduce tuple pickling the class ``obj`` by value: a skeleton class (or
    enum with its members) filled by ``_class_setstate`` once memoized, so
    the class may refer to itself."""
    if issubclass(obj, enum.Enum):
        return (
            _make_skeleton_enum,
            _enum_getnewargs(obj),
            _enum_getstate(obj),
            None,
            None,
            _class_setstate,
        )
    return (
        _make_skeleton_class,
        _class_getnewargs(obj),
        _class_getstate(obj),
        None,
        None,
        _class_setstate,
    )


_NoneType = type(None)
_EllipsisType = type(Ellipsis)
_NotImplementedType = type(NotImplemented)


def _class_reduce(obj):
    """How the class ``obj`` is pickled.

    The types of ``None``, ``...`` and ``NotImplemented`` are ``type(x)``;
    other classes exposed by :mod:`types` only are ``_builtin_type(name)``;
    classes that cannot be imported back (or belong to a module registered
    for pickling by value) go by value. Everything else returns
    ``NotImplemented``: pickle saves the class as a global.
    """
    if obj is _NoneType:
        return type, (None,)
    if obj is _EllipsisType:
        return type, (Ellipsis,)
    if obj is _NotImplementedType:
        return type, (NotImplemented,)
    name = _BUILTIN_TYPE_NAMES.get(obj)
    if name is not None:
        return _builtin_type, (name,)
    if _should_pickle_by_reference(obj):
        return NotImplemented
    return _dynamic_class_reduce(obj)
