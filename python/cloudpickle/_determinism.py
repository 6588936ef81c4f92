"""Deterministic payloads: canonical texts of values whose ``repr`` shows
sets in hash order, and (from the engine) the tracker ids of classes and
type variables pickled by value, derived from their definitions so that
the same definition gets the same id in every process.
"""

from ._engine import (
    _PLACEHOLDER_TRACKER_ID,
    _definition_digest,
    _get_or_create_tracker_id,
)

__all__ = ["_PLACEHOLDER_TRACKER_ID", "_definition_digest", "_get_or_create_tracker_id"]

# The tracker ids of classes and type variables pickled by value are minted
# by the engine (src/tracker_id.rs): a digest of their canonical pickle, so
# the same definition gets the same id in every process and under every
# PYTHONHASHSEED (``_definition_digest``); a class stands under
# ``_PLACEHOLDER_TRACKER_ID`` in its own canonical pickle.


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
