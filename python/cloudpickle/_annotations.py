"""Python 3.14+ (PEP 649/749): the annotations of a class pickled by value,
evaluated, for the ``__annotations__`` entry of its state.

The engine's class reduction (src/reduce/class_reduction.rs) removes the
annotate function (it closes over the class namespace, and the reference
cloudpickle drops it, losing the annotations) and the cache Python fills on
first access from the class namespace it ships, and calls
``_portable_class_annotations`` (through the bridge) for what replaces
them. What is here is a sequence of ``annotationlib`` calls and rebuilds of
typing objects through their own Python API, so it stays Python, in this
one place. The loading side (this package's ``_class_setstate`` or the
reference's) assigns ``__annotations__``, which Python 3.14 accepts on any
class.
"""

import types
import typing

__all__ = ["_portable_class_annotations"]


def _portable_class_annotations(owner, annotate, cached):
    """The annotations of the class ``owner`` to ship, or None (not carried).

    ``cached`` (when a dict) is what Python cached on first access;
    otherwise the annotate function ``annotate`` is called now (the class
    is not modified), in the FORWARDREF format: a name that cannot be
    resolved yet becomes an ``annotationlib.ForwardRef`` instead of
    failing. If it raises or gives no dict, nothing is carried, as the
    reference carries nothing.
    """
    import annotationlib

    if isinstance(cached, dict):
        annotations = cached
    else:
        try:
            annotations = annotationlib.call_annotate_function(
                annotate, annotationlib.Format.FORWARDREF, owner=owner
            )
        except Exception:  # noqa: BLE001 - as the reference: not carried
            return None
        if not isinstance(annotations, dict):
            return None
    return _portable_annotations(annotations, annotate, owner)


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
