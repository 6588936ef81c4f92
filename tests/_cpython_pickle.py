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
import operator
import pickle
import types

from cloudpickle import _engine

_ORIGINAL_PICKLER = pickle.Pickler

_MARK = pickle.MARK
_APPEND = pickle.APPEND
_APPENDS = pickle.APPENDS
_SETITEM = pickle.SETITEM
_SETITEMS = pickle.SETITEMS
_ADDITEMS = pickle.ADDITEMS
_EMPTY_SET = pickle.EMPTY_SET
_BATCHSIZE = 1000


_SAVED_BEFORE_REDUCER_OVERRIDE = frozenset(
    t
    for t in (
        type(None),
        bool,
        int,
        float,
        bytes,
        str,
        dict,
        set,
        frozenset,
        list,
        tuple,
        bytearray,
        getattr(pickle, "PickleBuffer", None),
    )
    if t is not None and t in pickle._Pickler.dispatch
)


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

    def __init__(self, file, protocol=None, *, fix_imports=True, buffer_callback=None):
        # _pickle.c reads the protocol as a C long and wants a file with write.
        if protocol is not None:
            protocol = operator.index(protocol)
            if not -(2**63) <= protocol < 2**63:
                raise OverflowError("Python int too large to convert to C long")
        if not hasattr(file, "write"):
            raise TypeError("file must have a 'write' attribute")
        pickle._Pickler.__init__(
            self, file, protocol, fix_imports=fix_imports, buffer_callback=buffer_callback
        )

    def save(self, obj, save_persistent_id=True):
        # _pickle.c saves these types before consulting reducer_override;
        # pickle.py offers every object to it first.
        if type(obj) not in _SAVED_BEFORE_REDUCER_OVERRIDE:
            return pickle._Pickler.save(self, obj, save_persistent_id)
        self.framer.commit_frame()
        pid = self.persistent_id(obj)
        if pid is not None and save_persistent_id:
            self.save_pers(pid)
            return
        x = self.memo.get(id(obj))
        if x is not None:
            self.write(self.get(x[0]))
            return
        self.dispatch[type(obj)](self, obj)

    def save_list(self, obj):
        with _FastCycleCheck(self, obj):
            self._save_list(obj)

    dispatch[list] = save_list

    def save_picklebuffer(self, obj):
        # _pickle.c writes an in-band buffer's data as bytes (or bytearray)
        # and memoizes the PickleBuffer itself; pickle.py memoizes a
        # temporary copy, whose id() PyPy gives the next copy of the same
        # bytes too (pickle.py then fails its memo assertion).
        if self.proto < 5:
            raise pickle.PicklingError("PickleBuffer can only be pickled with protocol >= 5")
        with obj.raw() as m:
            if not m.contiguous:
                raise pickle.PicklingError(
                    "PickleBuffer can not be pickled when pointing to a non-contiguous buffer"
                )
            in_band = True
            if self._buffer_callback is not None:
                in_band = bool(self._buffer_callback(obj))
            if not in_band:
                self.write(pickle.NEXT_BUFFER)
                if m.readonly:
                    self.write(pickle.READONLY_BUFFER)
                return
            readonly, data = m.readonly, m.tobytes()
        memoize = self.memoize
        self.memoize = lambda _copy: memoize(obj)
        try:
            if readonly:
                self.save_bytes(data)
            else:
                self.save_bytearray(data)
        finally:
            del self.memoize

    if getattr(pickle, "PickleBuffer", None) in dispatch:
        dispatch[pickle.PickleBuffer] = save_picklebuffer

    def save_c_function(self, obj):
        # A function of a C extension (cpyext's builtin_function_or_method on
        # PyPy, whose __reduce__ differs): reduced as CPython's builtin
        # functions reduce themselves (meth_reduce): by name when bound to a
        # module or to nothing, else getattr(owner, name).
        owner = getattr(obj, "__self__", None)
        if owner is None or isinstance(owner, types.ModuleType):
            self.save_global(obj)
        else:
            self.save_reduce(getattr, (owner, obj.__name__), obj=obj)

    if type(_engine.dumps) not in dispatch:
        dispatch[type(_engine.dumps)] = save_c_function

    def _save_list(self, obj):
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

    def save_dict(self, obj):
        with _FastCycleCheck(self, obj):
            self._save_dict(obj)

    dispatch[dict] = save_dict

    def _save_dict(self, obj):
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

    def dump(self, obj):
        # _pickle.c keeps the pickle in its buffer and hands it to the file
        # when a frame of protocol 4 is committed, before a large bytes
        # payload (written on its own) and at the end of a dump that
        # succeeded; pickle.py writes its PROTO header and, below protocol
        # 4, every opcode at once.
        file_write = self.framer.file_write
        write_large_bytes = self._write_large_bytes
        buf = io.BytesIO()

        def flush():
            if buf.tell():
                file_write(buf.getvalue())
                buf.seek(0)
                buf.truncate()

        def buffered_write(data):
            n = buf.write(data)
            if self.proto >= 4 and buf.tell() >= self.framer._FRAME_SIZE_TARGET:
                flush()
            return n

        def large_bytes(header, payload):
            self.framer.commit_frame(force=True)
            buf.write(header)
            flush()
            file_write(payload)

        # A dump that failed leaves pickle.py's frame open; _pickle.c starts
        # afresh.
        self.framer.current_frame = None
        self.framer.file_write = buffered_write
        self._write_large_bytes = large_bytes
        try:
            pickle._Pickler.dump(self, obj)
        finally:
            self.framer.file_write = file_write
            self._write_large_bytes = write_large_bytes
        flush()

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
        name = getattr(func, "__name__", "")
        if self.proto >= 2 and name == "__newobj_ex__":
            if len(args) != 3:
                raise pickle.PicklingError(
                    f"length of the NEWOBJ_EX argument tuple must be exactly 3, not {len(args)}"
                )
            cls, cls_args, cls_kwargs = args
            if not isinstance(cls, type):
                raise pickle.PicklingError(
                    "first item from NEWOBJ_EX argument tuple must be a class, not "
                    f"{type(cls).__name__}"
                )
            if not isinstance(cls_args, tuple):
                raise pickle.PicklingError(
                    "second item from NEWOBJ_EX argument tuple must be a tuple, not "
                    f"{type(cls_args).__name__}"
                )
            if not isinstance(cls_kwargs, dict):
                raise pickle.PicklingError(
                    "third item from NEWOBJ_EX argument tuple must be a dict, not "
                    f"{type(cls_kwargs).__name__}"
                )
        elif self.proto >= 2 and name == "__newobj__":
            if not args:
                raise pickle.PicklingError("__newobj__ arglist is empty")
            if not isinstance(args[0], type):
                raise pickle.PicklingError("args[0] from __newobj__ args is not a type")
        return pickle._Pickler.save_reduce(
            self, func, args, state, listitems, dictitems, state_setter, obj=obj
        )

    def _batch_setitems(self, items):
        return pickle._Pickler._batch_setitems(self, _pairs(items))


class _FastCycleCheck:
    """``_pickle.c``'s cycle check in fast mode (no memo): from 50 nested
    lists or dicts on, meeting one of them again is a ValueError."""

    LIMIT = 50

    def __init__(self, pickler, obj):
        self.pickler = pickler
        self.obj = obj

    def __enter__(self):
        p = self.pickler
        if not p.fast:
            return
        nesting = p.__dict__.get("_fast_nesting", 0)
        p._fast_nesting = nesting + 1
        if nesting >= self.LIMIT:
            memo = p.__dict__.setdefault("_fast_memo", {})
            if id(self.obj) in memo:
                raise ValueError(
                    "fast mode: can't pickle cyclic objects including object type "
                    f"{type(self.obj).__name__} at {id(self.obj):#x}"
                )
            memo[id(self.obj)] = 1

    def __exit__(self, *exc):
        p = self.pickler
        if not p.fast:
            return
        nesting = p._fast_nesting
        p._fast_nesting = nesting - 1
        if nesting >= self.LIMIT:
            p.__dict__.get("_fast_memo", {}).pop(id(self.obj), None)


def _pairs(items):
    """``items``, checked as ``_pickle.c`` checks a dict items iterator."""
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError("dict items iterator must return 2-tuples")
        yield item


def dumps(obj, protocol=None, *, fix_imports=True, buffer_callback=None):
    f = io.BytesIO()
    CPythonPickler(f, protocol, fix_imports=fix_imports, buffer_callback=buffer_callback).dump(obj)
    return f.getvalue()


def dump(obj, file, protocol=None, *, fix_imports=True, buffer_callback=None):
    CPythonPickler(file, protocol, fix_imports=fix_imports, buffer_callback=buffer_callback).dump(
        obj
    )


def install():
    """Make the oracle the ``pickle`` module's pickler for this process."""
    pickle.Pickler = CPythonPickler
    pickle.dumps = dumps
    pickle.dump = dump
