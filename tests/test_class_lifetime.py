"""Pickling a class by value must not keep it alive: once the program drops
it, a full collection frees it (and what its namespace holds), as with the
reference cloudpickle. The engine caches class reductions; the cache lets go
of them before each full collection."""

import gc
import pickle
import sys
import weakref

import cloudpickle
import pytest


class Payload:
    """A large value a class attribute might hold."""


def make_class(i):
    class Holder:
        data = Payload()
        index = i

        def method(self):
            return self.index

        def uses_class_cell(self):
            return __class__  # a cell referring back to the class

    return Holder


@pytest.mark.skipif(
    sys.implementation.name == "pypy",
    reason="PyPy's cpyext never frees a class that went through a C extension "
    "(seen with a C function that does nothing)",
)
def test_pickled_classes_are_freed_after_a_full_collection():
    refs = []
    for i in range(50):
        cls = make_class(i)
        for _ in range(3):  # pickled more than once: the cached reduction is used
            payload = cloudpickle.dumps(cls)
        cloudpickle.dumps([cls(), cls()])
        refs.append((weakref.ref(cls), weakref.ref(cls.data)))
        assert pickle.loads(payload) is cls
        del cls
    gc.collect()
    assert [r for r in refs if r[0]() is not None or r[1]() is not None] == []


def test_cache_still_serves_live_classes():
    cls = make_class(7)
    first = cloudpickle.dumps(cls)
    gc.collect()  # empties the cache
    assert cloudpickle.dumps(cls) == first
    assert pickle.loads(first) is cls
    assert pickle.loads(cloudpickle.dumps(cls()))
