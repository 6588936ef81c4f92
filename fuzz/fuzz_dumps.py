"""Coverage-guided fuzzing of the engine's entry points with atheris.

Each input is decoded into an object graph (nested containers, shared and
cyclic references, strings and bytes of every size class, big ints, buffers,
functions and classes built from a few templates) and a protocol, then:

* builtin data: ``cloudpickle.dumps`` must give the bytes of ``pickle.dumps``
  (or raise the same exception type);
* with ``Pickler`` in fast mode, with ``buffer_callback``, with
  ``persistent_id``: the same outcome as the standard ``pickle.Pickler``;
* code and classes: the payload must load into something that behaves the
  same.

The engine is built with LLVM's coverage instrumentation (see
``fuzz/run.sh``), so libFuzzer steers inputs towards engine branches not yet
reached: protocols, batch and frame boundaries, memo index widths, large
payload bypasses, recursion checks. Run ``bash fuzz/run.sh [seconds]``.
"""

import io
import pickle
import sys

import atheris

with atheris.instrument_imports():
    import cloudpickle

MAX_DEPTH = 6


class Decoder:
    """Turns fuzzer bytes into objects, deterministically."""

    def __init__(self, data):
        self.fdp = atheris.FuzzedDataProvider(data)
        self.made = []  # objects already built, for shared references

    def small(self, n):
        return self.fdp.ConsumeIntInRange(0, n)

    def text(self):
        size = [0, 1, 5, 40, 300, 70_000][self.small(5)]
        return self.fdp.ConsumeUnicodeNoSurrogates(size) * (1 if size < 1000 else 2)

    def blob(self):
        size = [0, 1, 5, 300, 66_000][self.small(4)]
        return self.fdp.ConsumeBytes(size).ljust(size, b"x")

    def atom(self):
        kind = self.small(9)
        if kind == 0:
            return None
        if kind == 1:
            return self.fdp.ConsumeBool()
        if kind == 2:
            return self.fdp.ConsumeInt(self.small(20))
        if kind == 3:
            return self.fdp.ConsumeRegularFloat()
        if kind == 4:
            return self.text()
        if kind == 5:
            return self.blob()
        if kind == 6:
            return bytearray(self.blob())
        if kind == 7:
            # Ints around the opcode boundaries (1, 2, 4 bytes, longs).
            return [255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, 2**64, -(2**200)][
                self.small(8)
            ]
        return complex(self.fdp.ConsumeRegularFloat(), 1.0)

    def value(self, depth=0):
        if depth >= MAX_DEPTH or self.fdp.remaining_bytes() == 0:
            return self.atom()
        kind = self.small(11)
        if kind <= 2:
            return self.atom()
        if kind == 3 and self.made:
            return self.made[self.small(len(self.made) - 1)]
        n = [0, 1, 2, 3, 4, 10, 1001][self.small(6)]
        n = min(n, self.fdp.remaining_bytes() + 1)
        if kind == 4:
            out = []
            self.made.append(out)
            out.extend(self.value(depth + 1) for _ in range(n))
            if self.fdp.ConsumeBool():
                out.append(out)  # a cycle
            return out
        if kind == 5:
            out = tuple(self.value(depth + 1) for _ in range(n))
            self.made.append(out)
            return out
        if kind == 6:
            out = {}
            self.made.append(out)
            for _ in range(n):
                key = self.key()
                out[key] = self.value(depth + 1)
            return out
        if kind == 7:
            return {self.key() for _ in range(n)}
        if kind == 8:
            return frozenset(self.key() for _ in range(n))
        if kind == 9:
            as_bytearray = self.fdp.ConsumeBool()
            data = self.blob()
            return pickle.PickleBuffer(bytearray(data) if as_bytearray else data)
        return [self.value(depth + 1) for _ in range(min(n, 3))] * 2  # shared items

    def key(self):
        kind = self.small(3)
        if kind == 0:
            return self.fdp.ConsumeInt(2)
        if kind == 1:
            return self.text()[:20]
        if kind == 2:
            return self.blob()[:10]
        return (self.fdp.ConsumeInt(1), self.text()[:5])


def outcome(func):
    try:
        return ("ok", func())
    except RecursionError:
        return ("error", "recursion")
    except pickle.PicklingError:
        # Both pickle and cloudpickle raise it for structures too deep to
        # pickle (RecursionError from pickle itself).
        return ("error", "recursion")
    except Exception as exc:  # the exception type is the contract
        return ("error", type(exc).__name__)


def check_data(decoder, obj, protocol):
    mode = decoder.small(3)
    if mode == 0:
        ours = outcome(lambda: cloudpickle.dumps(obj, protocol=protocol))
        theirs = outcome(lambda: pickle.dumps(obj, protocol=protocol))
    elif mode == 1:

        def run(pickler_class):
            buf = io.BytesIO()
            p = pickler_class(buf, protocol=protocol)
            p.fast = True
            p.dump(obj)
            return buf.getvalue()

        ours = outcome(lambda: run(cloudpickle.Pickler))
        theirs = outcome(lambda: run(pickle.Pickler))
    elif mode == 2:
        answer = decoder.fdp.ConsumeBool()
        ours = outcome(
            lambda: cloudpickle.dumps(obj, protocol=protocol, buffer_callback=lambda b: answer)
        )
        theirs = outcome(
            lambda: pickle.dumps(obj, protocol=protocol, buffer_callback=lambda b: answer)
        )
    else:

        def run(pickler_class):
            seen = []

            class P(pickler_class):
                def persistent_id(self, o):
                    if isinstance(o, bytes) and len(o) == 5:
                        seen.append(o)
                        return ("blob", len(seen))
                    return None

            buf = io.BytesIO()
            P(buf, protocol=protocol).dump(obj)
            return buf.getvalue()

        ours = outcome(lambda: run(cloudpickle.Pickler))
        theirs = outcome(lambda: run(pickle.Pickler))
    if protocol < 5 and mode == 2:
        return
    if ours[0] == "error" and ours[1] == theirs[1] == "recursion":
        return
    if mode == 1 and theirs in (("error", "KeyError"), ("error", "ValueError")):
        # _pickle.c's fast mode loses track of its cycle table (keyed by
        # address, entered past 50 levels of nesting) when frozensets are
        # involved: a frozenset shared by two lists more than 50 levels deep
        # is reported as a cycle (ValueError "fast mode: can't pickle cyclic
        # objects"), a lone one raises KeyError, and the ValueError of a
        # real cycle can be replaced by the KeyError of a second deletion.
        # The pure-Python pickler pickles the acyclic ones. The engine raises
        # that ValueError for real cycles and pickles the rest; its payload
        # must then be right.
        if ours[0] == "ok":
            assert same(pickle.loads(ours[1]), obj)
        else:
            assert ours == ("error", "ValueError"), ours
        return
    assert ours == theirs, (protocol, mode, ours[:1], theirs[:1], ours[1:], theirs[1:])


TEMPLATES = [
    "def made(x, y=DEFAULT):\n    return (x, y, CAPTURED)\n",
    "def make(c):\n    def made(x, y=DEFAULT):\n        return (x, y, c, CAPTURED)\n"
    "    return made\nmade = make(CAPTURED)\n",
    "made = lambda x, y=DEFAULT: [x, y, CAPTURED]\n",
    "class Made:\n    attr = CAPTURED\n    def __init__(self, v=DEFAULT):\n        self.v = v\n"
    "    def __eq__(self, other):\n"
    "        return type(self).__name__ == type(other).__name__ and self.v == other.v\n"
    "    def made(self, x, y=DEFAULT):\n        return (x, y, self.attr)\n",
]


def check_code(decoder, protocol):
    template = TEMPLATES[decoder.small(len(TEMPLATES) - 1)]
    namespace = {"__name__": "fuzzed", "CAPTURED": decoder.value(3), "DEFAULT": decoder.atom()}
    exec(template, namespace)
    made = namespace.get("Made", namespace.get("made"))
    try:
        payload = cloudpickle.dumps(made, protocol=max(protocol, 2))
    except Exception:
        return  # unpicklable captured values (e.g. a PickleBuffer below 5)
    loaded = pickle.loads(payload)
    if isinstance(made, type):
        assert same(loaded().made(1), made().made(1))
    else:
        ours, theirs = outcome(lambda: loaded(1)), outcome(lambda: made(1))
        assert ours[0] == theirs[0] and same(ours[1], theirs[1]), (ours, theirs)


def same(a, b, pairs=None):
    """Structurally equal, cycles included (NaN equal to NaN)."""
    pairs = {} if pairs is None else pairs
    if isinstance(a, pickle.PickleBuffer) or isinstance(b, pickle.PickleBuffer):
        # A buffer pickled in band loads as bytes or bytearray.
        return bytes(a) == bytes(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (list, tuple, dict)):
        if pairs.get(id(a)) is b:
            return True
        pairs[id(a)] = b
        if len(a) != len(b):
            return False
        if isinstance(a, dict):
            return all(k in b and same(v, b[k], pairs) for k, v in a.items())
        return all(same(x, y, pairs) for x, y in zip(a, b))
    return a == b


def test_one_input(data):
    decoder = Decoder(data)
    protocol = decoder.small(5)
    if decoder.small(7) == 0:
        check_code(decoder, protocol)
    else:
        check_data(decoder, decoder.value(), protocol)


def main():
    sys.setrecursionlimit(3000)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
