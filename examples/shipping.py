"""Shipping closures to ``concurrent.futures`` and ``multiprocessing`` pools.

The standard library pools pickle the callables they send to workers with
``pickle``, which refuses lambdas, closures and anything defined in
``__main__`` under the spawn start method. Wrap such a callable in
:class:`Shipped`: the wrapper pickles the callable with cloudpickle once, and
is itself pickled as those bytes, so the worker needs neither the callable's
module nor its source::

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    from shipping import Shipped

    scale = 3
    task = Shipped(lambda x: x * scale)
    with ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn")) as pool:
        print(list(pool.map(task, range(4))))

The worker only needs this module (``shipping``) and cloudpickle installed.
"""

import pickle

import cloudpickle


class Shipped:
    """A callable carried by value: ``Shipped(fn)(*args)`` calls ``fn``."""

    __slots__ = ("_payload", "_fn")

    def __init__(self, fn):
        self._fn = fn
        self._payload = cloudpickle.dumps(fn)

    @classmethod
    def _from_payload(cls, payload):
        self = cls.__new__(cls)
        self._payload = payload
        self._fn = pickle.loads(payload)
        return self

    def __reduce__(self):
        return (Shipped._from_payload, (self._payload,))

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def __repr__(self):
        return f"Shipped({self._fn!r}, {len(self._payload)} bytes)"
