"""The implementations compared by the benchmarks.

- ``project``: ``cloudpickle.dumps`` from this project, installed in the
  interpreter running the driver;
- ``pickle``: the standard ``pickle.dumps``, in that same interpreter;
- ``reference``: ``cloudpickle.dumps`` from the pure-Python cloudpickle
  release, installed in a separate virtual environment (it has the same import
  name as the project, so it cannot share an interpreter with it).

Every implementation is called as ``dumps(obj, PROTOCOL)``.
"""

import pickle
import sys

IMPLS = ("pickle", "project", "reference")
REFERENCE_VERSION = "3.1.3"
PROTOCOL = pickle.HIGHEST_PROTOCOL


class WrongImplementation(RuntimeError):
    pass


def load(impl):
    """Return ``(dumps, info)`` for ``impl``; ``info`` is a dict of strings
    describing what was loaded."""
    info = {
        "impl": impl,
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "protocol": str(PROTOCOL),
    }
    if impl == "pickle":
        return pickle.dumps, info
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r}")

    try:
        import cloudpickle
    except ImportError as exc:
        raise WrongImplementation(f"cannot import cloudpickle: {exc}") from exc

    has_engine = _has_engine(cloudpickle)
    info["cloudpickle_version"] = str(getattr(cloudpickle, "__version__", "?"))
    if impl == "project" and not has_engine:
        raise WrongImplementation(
            "the cloudpickle importable by this interpreter is not this project "
            f"(no cloudpickle._engine; found {cloudpickle.__file__}): "
            "install the project here first (pip install .)"
        )
    if impl == "reference":
        if has_engine:
            raise WrongImplementation(
                "the reference interpreter imports this project's cloudpickle, "
                f"not the pure-Python release ({cloudpickle.__file__})"
            )
        if info["cloudpickle_version"] != REFERENCE_VERSION:
            raise WrongImplementation(
                f"reference cloudpickle is {info['cloudpickle_version']}, "
                f"expected {REFERENCE_VERSION}"
            )
    return cloudpickle.dumps, info


def _has_engine(module):
    try:
        __import__(module.__name__ + "._engine")
    except ImportError:
        return False
    return True
