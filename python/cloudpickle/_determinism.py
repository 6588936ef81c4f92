"""Deterministic payloads: the tracker ids of classes and type variables
pickled by value (derived from their definitions, so the same definition
gets the same id in every process), and canonical texts of values whose
``repr`` shows sets in hash order.
"""

import hashlib
import threading
import uuid

from . import _engine
from ._reconstructors import (
    _DYNAMIC_CLASS_TRACKER_BY_CLASS,
    _DYNAMIC_CLASS_TRACKER_BY_ID,
    _DYNAMIC_CLASS_TRACKER_LOCK,
)

__all__ = ["_get_or_create_tracker_id"]


# ---------------------------------------------------------------------------
# Tracker ids of classes (and type variables) pickled by value.
#
# The id is derived from the definition: it is a digest of the canonical
# pickle of the class (sets in sorted order, its own id replaced by a
# placeholder), so the same definition gets the same id in every process
# and under every PYTHONHASHSEED, and payloads are deterministic. Distinct
# live classes with identical pickles (a class factory called twice with the
# same values) get distinct ids: the n-th such class, in the order they are
# first pickled, gets a digest of (digest, n). A definition that only a
# custom pickler can pickle (its own dispatch table or persistent_id) falls
# back to a random id.
# ---------------------------------------------------------------------------

# Classes whose digest this thread is computing: they refer to themselves
# (or to each other) through the placeholder while it runs.
_TRACKER_PENDING = threading.local()
_PLACEHOLDER_TRACKER_ID = "0" * 32


def _definition_digest(class_def):
    """Hex digest of the canonical pickle of ``class_def`` (a random hex
    uuid when the default pickler cannot pickle it)."""
    try:
        data = _engine._canonical_dumps(class_def, 5)
    except Exception:
        return uuid.uuid4().hex
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _get_or_create_tracker_id(class_def):
    """Return the tracker id of ``class_def``, minting one from its
    definition (see above) and recording it in both directions if it has
    none yet."""
    with _DYNAMIC_CLASS_TRACKER_LOCK:
        tracker_id = _DYNAMIC_CLASS_TRACKER_BY_CLASS.get(class_def)
    if tracker_id is not None:
        return tracker_id
    pending = getattr(_TRACKER_PENDING, "ids", None)
    if pending is None:
        pending = _TRACKER_PENDING.ids = set()
    if id(class_def) in pending:
        return _PLACEHOLDER_TRACKER_ID
    pending.add(id(class_def))
    try:
        digest = _definition_digest(class_def)
    finally:
        pending.discard(id(class_def))
    with _DYNAMIC_CLASS_TRACKER_LOCK:
        tracker_id = _DYNAMIC_CLASS_TRACKER_BY_CLASS.get(class_def)
        if tracker_id is not None:
            # Minted meanwhile (another thread, or a nested pickle).
            return tracker_id
        tracker_id = digest
        n = 0
        while True:
            known = _DYNAMIC_CLASS_TRACKER_BY_ID.get(tracker_id)
            if known is None or known is class_def:
                break
            n += 1
            tracker_id = hashlib.blake2b(f"{digest}:{n}".encode(), digest_size=16).hexdigest()
        _DYNAMIC_CLASS_TRACKER_BY_CLASS[class_def] = tracker_id
        _DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] = class_def
        return tracker_id


def _canonical_repr(value):
    """``repr(value)`` with the items of (frozen)sets sorted by their own
    canonical repr, inside tuples, lists and dicts too."""
    kind = type(value)
    if kind in (set, frozenset) and value:
        body = "{" + ", ".join(sorted(_canonical_repr(v) for v in value)) + "}"
        return body if kind is set else f"frozenset({body})"
    if kind is tuple:
        items = [_canonical_repr(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if kind is list:
        return "[" + ", ".join(_canonical_repr(v) for v in value) + "]"
    if kind is dict:
        pairs = (f"{_canonical_repr(k)}: {_canonical_repr(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return repr(value)


class _CanonicalDefault:
    """A parameter default that prints as its canonical repr."""

    def __init__(self, value):
        self.text = _canonical_repr(value)

    def __repr__(self):
        return self.text


def _canonical_dataclass_doc(cls, doc):
    """The docstring ``dataclasses`` generated for ``cls`` (its name and
    signature) with set-valued defaults written in sorted order, or None
    when ``doc`` is not that generated docstring. The generated text shows
    sets in hash order, which changes with PYTHONHASHSEED."""
    import inspect

    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    if doc != cls.__name__ + str(signature).replace(" -> None", ""):
        return None
    parameters = [
        p if p.default is p.empty else p.replace(default=_CanonicalDefault(p.default))
        for p in signature.parameters.values()
    ]
    text = str(signature.replace(parameters=parameters))
    return cls.__name__ + text.replace(" -> None", "")
