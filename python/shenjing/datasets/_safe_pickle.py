"""A reader for the pickled data of the CIFAR batches and of the object arrays in Keras's
imdb.npz / reuters.npz, without the pickle module.

Those files hold plain data: dicts, lists, tuples, ints, floats, strings, bytes and NumPy
arrays. Python's unpickler would run whatever callables a file names; this reader
interprets only the opcodes that plain data uses (protocols 0-4) and recognises exactly four
callables, none of which it calls: NumPy's ``_reconstruct`` and ``ndarray`` (an array), its
``dtype`` (a dtype from a type string) and ``_codecs.encode`` (how Python 3's protocol 2
spells bytes). Anything else is a ValueError, so a tampered file cannot run code.
"""
import ast
import struct

import numpy as np

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}
_MAX_DEPTH = 10000  # values on the stack at once; data files need a handful


class _Global:
    def __init__(self, kind):
        self.kind = kind


class _ArrayStub:
    """An ndarray between its REDUCE and its BUILD."""
    array = None


class _DtypeStub:
    def __init__(self, spec):
        self.spec = spec
        self.dtype = None


class _Mark:
    pass


_MARK = _Mark()


def _error(msg):
    return ValueError(f"Not a plain-data pickle: {msg}.")


def _make_dtype(stub, state):
    spec = stub.spec
    # Python 2 files spell these as byte strings (read with encoding='bytes').
    spec = spec.decode("latin-1") if isinstance(spec, bytes) else spec
    if isinstance(state, tuple) and len(state) > 1 and isinstance(state[1], bytes):
        state = (state[0], state[1].decode("latin-1")) + state[2:]
    if not isinstance(spec, str) or not isinstance(state, tuple) or len(state) < 8:
        raise _error(f"unexpected dtype {spec!r}")
    endian, subarray, names, fields = state[1], state[2], state[3], state[4]
    if subarray is not None or names is not None or fields is not None:
        raise _error("structured dtypes are not supported")
    if spec.startswith("O"):
        return np.dtype(object)
    if endian not in ("<", ">", "|", "="):
        raise _error(f"bad byte order {endian!r}")
    try:
        dtype = np.dtype((endian if endian != "|" else "") + spec)
    except TypeError as e:
        raise _error(f"unknown dtype {spec!r}") from e
    if dtype.kind not in "biufcSU":
        raise _error(f"dtype {spec!r} is not plain data")
    return dtype


def _resolve(x):
    if isinstance(x, _ArrayStub):
        if x.array is None:
            raise _error("an array without its data")
        return x.array
    if isinstance(x, _DtypeStub):
        raise _error("a dtype outside an array")
    if isinstance(x, _Global):
        raise _error("a bare reference to a callable")
    return x


def _make_array(state):
    if not isinstance(state, tuple) or len(state) != 5:
        raise _error("unexpected ndarray state")
    _, shape, dtype, fortran, data = state
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise _error(f"bad array shape {shape!r}")
    if not isinstance(dtype, _DtypeStub) or dtype.dtype is None:
        raise _error("array without a dtype")
    dtype = dtype.dtype
    count = int(np.prod(shape, dtype=np.int64))
    order = "F" if fortran else "C"
    if dtype == object:
        if not isinstance(data, list) or len(data) != count:
            raise _error("object array data does not match its shape")
        out = np.empty(count, dtype=object)
        for i, v in enumerate(data):
            out[i] = _resolve_deep(v)
        return out.reshape(shape, order=order)
    if isinstance(data, str):  # protocol 0/1 spell bytes as latin-1 text
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
        raise _error(f"array data has {len(data) if isinstance(data, bytes) else '?'} bytes, "
                     f"its shape {shape} and dtype {dtype} need {count * dtype.itemsize}")
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order=order).copy()


def _resolve_deep(x):
    if isinstance(x, list):
        return [_resolve_deep(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_resolve_deep(v) for v in x)
    if isinstance(x, dict):
        return {_resolve_deep(k): _resolve_deep(v) for k, v in x.items()}
    return _resolve(x)


class _Reader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise _error("truncated")
        out = self.data[self.pos:self.pos + n].tobytes()
        self.pos += n
        return out

    def line(self):
        end = bytes(self.data[self.pos:]).find(b"\n")
        if end < 0:
            raise _error("truncated")
        return self.take(end + 1)[:-1]

    def u(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]


def loads(data):
    """The value of one pickle in ``data`` (bytes), read as ``pickle.loads(data,
    encoding='bytes')`` would read it, for plain data only. Returns the value and the
    number of bytes it took."""
    try:
        return _loads(data)
    except (TypeError, struct.error, UnicodeDecodeError, OverflowError, SyntaxError,
            MemoryError, RecursionError) as e:
        raise _error(str(e)) from e
    except ValueError as e:
        if str(e).startswith("Not a plain-data pickle"):
            raise
        raise _error(str(e)) from e


def _loads(data):
    r = _Reader(data)
    stack, memo = [], {}

    def pop_mark():
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise _error("MARK missing")

    def push(v):
        if len(stack) >= _MAX_DEPTH:
            raise _error("too deep")
        stack.append(v)

    def pop():
        if not stack:
            raise _error("stack underflow")
        return stack.pop()

    def top():
        if not stack:
            raise _error("stack underflow")
        return stack[-1]

    def global_(module, name):
        if (module, name) in _RECONSTRUCT:
            return _Global("reconstruct")
        if (module, name) == ("numpy", "ndarray"):
            return _Global("ndarray")
        if (module, name) == ("numpy", "dtype"):
            return _Global("dtype")
        if (module, name) == ("_codecs", "encode"):
            return _Global("encode")
        raise _error(f"refusing the callable {module}.{name}")

    while True:
        op = r.take(1)
        if op == b"\x80":  # PROTO
            if r.u("<B") > 5:
                raise _error("unknown protocol")
        elif op == b"\x95":  # FRAME
            r.u("<Q")
        elif op == b".":  # STOP
            if len(stack) != 1:
                raise _error("stack not empty at STOP")
            return _resolve_deep(stack[0]), r.pos
        elif op == b"(":
            push(_MARK)
        elif op == b"}":
            push({})
        elif op == b"]":
            push([])
        elif op == b")":
            push(())
        elif op == b"N":
            push(None)
        elif op == b"\x88":
            push(True)
        elif op == b"\x89":
            push(False)
        elif op == b"J":
            push(r.u("<i"))
        elif op == b"K":
            push(r.u("<B"))
        elif op == b"M":
            push(r.u("<H"))
        elif op in (b"\x8a", b"\x8b"):  # LONG1, LONG4
            n = r.u("<B") if op == b"\x8a" else r.u("<i")
            if n > 64:
                raise _error("integer too long")
            push(int.from_bytes(r.take(n), "little", signed=True))
        elif op == b"I":  # INT (protocol 0; also True/False as 01/00)
            text = r.line()
            push({b"01": True, b"00": False}.get(text) if text in (b"01", b"00")
                 else int(text))
        elif op == b"G":
            push(r.u(">d"))
        elif op == b"F":  # protocol 0 text forms of float, long, str, unicode, put, get
            push(float(r.line()))
        elif op == b"L":
            text = r.line().rstrip(b"L")
            if len(text) > 200:
                raise _error("integer too long")
            push(int(text))
        elif op == b"S":
            text = ast.literal_eval(r.line().decode("latin-1"))
            if not isinstance(text, str):
                raise _error("bad STRING")
            push(text.encode("latin-1"))
        elif op == b"V":
            push(r.line().decode("raw-unicode-escape"))
        elif op == b"p":
            memo[int(r.line())] = top()
        elif op == b"g":
            key = int(r.line())
            if key not in memo:
                raise _error("memo key missing")
            push(memo[key])
        elif op in (b"U", b"T", b"C", b"B", b"\x8e"):  # (SHORT_)BINSTRING, (SHORT_)BINBYTES
            n = {b"U": "<B", b"C": "<B", b"T": "<i", b"B": "<I", b"\x8e": "<Q"}[op]
            push(r.take(r.u(n)))
        elif op in (b"\x8c", b"X", b"\x8d"):  # unicode
            n = {b"\x8c": "<B", b"X": "<I", b"\x8d": "<Q"}[op]
            push(r.take(r.u(n)).decode("utf-8"))
        elif op in (b"q", b"r"):  # BINPUT, LONG_BINPUT
            memo[r.u("<B" if op == b"q" else "<I")] = top()
        elif op == b"\x94":  # MEMOIZE
            memo[len(memo)] = top()
        elif op in (b"h", b"j"):  # BINGET, LONG_BINGET
            key = r.u("<B" if op == b"h" else "<I")
            if key not in memo:
                raise _error("memo key missing")
            push(memo[key])
        elif op == b"t":
            push(tuple(pop_mark()))
        elif op in (b"\x85", b"\x86", b"\x87"):
            n = {b"\x85": 1, b"\x86": 2, b"\x87": 3}[op]
            if len(stack) < n:
                raise _error("stack underflow")
            items = stack[-n:]
            del stack[-n:]
            push(tuple(items))
        elif op == b"l":
            push(list(pop_mark()))
        elif op == b"d":
            items = pop_mark()
            push(dict(zip(items[::2], items[1::2])))
        elif op == b"a":
            v = pop()
            lst = top()
            if not isinstance(lst, list):
                raise _error("APPEND to a non-list")
            lst.append(v)
        elif op == b"e":
            items = pop_mark()
            lst = top()
            if not isinstance(lst, list):
                raise _error("APPENDS to a non-list")
            lst.extend(items)
        elif op in (b"s", b"u"):
            items = [pop(), pop()][::-1] if op == b"s" else pop_mark()
            d = top()
            if not isinstance(d, dict) or len(items) % 2:
                raise _error("SETITEM(S) on a non-dict")
            for k, v in zip(items[::2], items[1::2]):
                d[_resolve(k)] = v
        elif op == b"c":  # GLOBAL
            module = r.line().decode("ascii", "replace")
            push(global_(module, r.line().decode("ascii", "replace")))
        elif op == b"\x93":  # STACK_GLOBAL
            name, module = pop(), pop()
            push(global_(module, name))
        elif op == b"R":  # REDUCE
            args, fn = pop(), pop()
            if not isinstance(fn, _Global) or not isinstance(args, tuple):
                raise _error("REDUCE on something other than a known callable")
            if fn.kind == "reconstruct":
                if len(args) != 3 or not (isinstance(args[0], _Global) and
                                          args[0].kind == "ndarray"):
                    raise _error("unexpected _reconstruct arguments")
                push(_ArrayStub())
            elif fn.kind == "dtype":
                if not args:
                    raise _error("dtype without a type")
                push(_DtypeStub(args[0]))
            elif fn.kind == "encode":
                if len(args) != 2 or not isinstance(args[0], str) or \
                        args[1] not in ("latin1", "latin-1"):
                    raise _error("unexpected _codecs.encode arguments")
                push(args[0].encode("latin-1"))
            else:
                raise _error(f"REDUCE on {fn.kind}")
        elif op == b"b":  # BUILD
            state = pop()
            obj = top()
            if isinstance(obj, _DtypeStub) and obj.dtype is None:
                obj.dtype = _make_dtype(obj, state)
            elif isinstance(obj, _ArrayStub) and obj.array is None:
                obj.array = _make_array(state)
            else:
                raise _error("BUILD on something other than an array or dtype")
        else:
            raise _error(f"opcode {op!r} at byte {r.pos - 1} is not supported")
