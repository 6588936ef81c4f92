"""The byte-identity oracle on interpreters whose ``pickle`` is not CPython's.

The tests compare cloudpickle's output with ``pickle.dumps``: on CPython that
is ``_pickle.c``, whose decisions the engine follows. PyPy's ``pickle`` writes
the same opcodes but batches list, dict and set items as ``pickle.py`` does:
a last batch of one item becomes ``APPEND``/``SETITEM`` and no empty batch
follows a full one, whereas ``_pickle.c`` writes exact lists, dicts and sets
of more than one item in batches of 1000 ending with one more (possibly
empty) batch after a full one, and walks an exact list by index (a list
emptied while it is pickled stops there). ``CPythonPickler`` is
``pickle.py``'s pickler with ``_pickle.c``'s batching of exact lists, dicts
and sets; ``install()`` makes it ``pickle.Pickler``, ``pickle.dumps`` and
``pickle.dump`` for the test process, so every comparison follows CPython.
"""

import io
import pickle

_ORIGINAL_PICKLER = pickle.Pickler

_MARK = pickle.MARK
_APPEND = pickle.APPEND
_APPENDS = pickle.APPENDS
_SETITEM = pickle.SETITEM
_SETITEMS = pickle.SETITEMS
_ADDITEMS = pickle.ADDITEMS
_EMPTY_SET = pickle.EMPTY_SET
_BATCHSIZE = 1000


class _OracleMeta(type):
    """Keeps ``issubclass(cloudpickle.Pickler, pickle.Pickler)`` true: a
    subclass of the interpreter's own Pickler is one of the oracle's too."""

    def __subclasscheck__(cls, sub):
        if type.__subclasscheck__(cls, sub):
            return True
        return cls is CPythonPickler and issubclass(sub, _ORIGINAL_PICKLER)

    def __instancecheck__(cls, obj):
        return cls.__subclasscheck__(type(obj))


def _next_or_stop(it):
    """The next item, or a stop marker when the container is exhausted or
    changed size (``_pickle.c`` then reports the change after the batch)."""
    try:
        return True, next(it)
    except (StopIteration, RuntimeError):
        return False, None


class CPythonPickler(pickle._Pickler, metaclass=_OracleMeta):
    """``pickle.py``'s pickler, with ``_pickle.c``'s batching (CPython 3.11)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_list(self, obj):
        if not self.bin:
            return pickle._Pickler.save_list(self, obj)
        self.write(pickle.EMPTY_LIST)
        self.memoize(obj)
        if len(obj) == 0:
            return
        save = self.save
        write = self.write
        if len(obj) == 1:
            save(obj[0])
            write(_APPEND)
            return
        total = 0
        while True:
            write(_MARK)
            batch = 0
            while total < len(obj):
                save(obj[total])
                total += 1
                batch += 1
                if batch == _BATCHSIZE:
                    break
            write(_APPENDS)
            if total >= len(obj):
                return

    dispatch[list] = save_list

    def save_dict(self, obj):
        if not self.bin:
            return pickle._Pickler.save_dict(self, obj)
        self.write(pickle.EMPTY_DICT)
        self.memoize(obj)
        size = len(obj)
        if size == 0:
            return
        save = self.save
        write = self.write
        it = iter(obj.items())
        if size == 1:
            k, v = next(it)
            save(k)
            save(v)
            write(_SETITEM)
            return
        while True:
            write(_MARK)
            batch = 0
            while True:
                more, item = _next_or_stop(it)
                if not more:
                    break
                save(item[0])
                save(item[1])
                batch += 1
                if batch == _BATCHSIZE:
                    break
            write(_SETITEMS)
            if len(obj) != size:
                raise RuntimeError("dictionary changed size during iteration")
            if batch != _BATCHSIZE:
                return

    dispatch[dict] = save_dict

    def save_set(self, obj):
        if self.proto < 4:
            return pickle._Pickler.save_set(self, obj)
        self.write(_EMPTY_SET)
        self.memoize(obj)
        size = len(obj)
        if size == 0:
            return
        it = iter(obj)
        while True:
            self.write(_MARK)
            batch = 0
            while True:
                more, item = _next_or_stop(it)
                if not more:
                    break
                self.save(item)
                batch += 1
                if batch == _BATCHSIZE:
                    break
            self.write(_ADDITEMS)
            if len(obj) != size:
                raise RuntimeError("set changed size during iteration")
            if batch != _BATCHSIZE:
                return

    dispatch[set] = save_set

    def save_reduce(
        self, func, args, state=None, listitems=None, dictitems=None, state_setter=None, *, obj=None
    ):
        # _pickle.c's checks, which pickle.py leaves to the loops (or skips).
        if not callable(func):
            raise pickle.PicklingError(
                "first item of the tuple returned by __reduce__ must be callable"
            )
        if not isinstance(args, tuple):
            raise pickle.PicklingError(
                "second item of the tuple returned by __reduce__ must be a tuple"
            )
        for items, which in ((listitems, "fourth"), (dictitems, "fifth")):
            if items is not None and not hasattr(type(items), "__next__"):
                raise pickle.PicklingError(
                    f"{which} element of the tuple returned by __reduce__ must be an "
                    f"iterator, not {type(items).__name__}"
                )
        if state_setter is not None and not callable(state_setter):
            raise pickle.PicklingError(
                "sixth element of the tuple returned by __reduce__ must be a function, "
                f"not {type(state_setter).__name__}"
            )
        return pickle._Pickler.save_reduce(
            self, func, args, state, listitems, dictitems, state_setter, obj=obj
        )

    def _batch_setitems(self, items):
        return pickle._Pickler._batch_setitems(self, _pairs(items))


def _pairs(items):
    """``items``, checked as ``_pickle.c`` checks a dict items iterator."""
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError("dict items iterator must return 2-tuples")
        yield item


def dumps(obj, protocol=None, *, fix_imports=True, buffer_callback=None):
    f = io.BytesIO()
    CPythonPickler(
        f, protocol, fix_imports=fix_imports, buffer_callback=buffer_callback
    ).dump(obj)
    return f.getvalue()


def dump(obj, file, protocol=None, *, fix_imports=True, buffer_callback=None):
    CPythonPickler(
        file, protocol, fix_imports=fix_imports, buffer_callback=buffer_callback
    ).dump(obj)


def install():
    """Make the oracle the ``pickle`` module's pickler for this process."""
    pickle.Pickler = CPythonPickler
    pickle.dumps = dumps
    pickle.dump = dump
