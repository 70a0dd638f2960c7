"""PyDataset's ``use_multiprocessing=True``: batches made by forked worker processes and
handed back without pickle. A worker gets a batch index as 8 bytes, calls ``__getitem__``,
writes the arrays of the batch into its shared-memory block (one per worker, reused: it is
free again once the parent asks for the next batch, and grown when a batch needs more) and
answers with a small JSON header (the block's name and, per array, dtype, shape and offset, in
the batch's tuple/list/dict structure). The parent copies the arrays out. Nothing is unpickled on
either side: the dataset reaches the workers by fork, errors come back as type name and text.

Workers are forked at the start of every epoch (after ``on_epoch_begin``, so they see the
dataset as it is then) and stopped at its end. Where fork does not exist, ``available()`` is
False and the caller uses threads."""
import json
import multiprocessing
import signal
import struct
import traceback

import numpy as np

from shenjing import _data_convert

_STOP = -1


def available():
    return "fork" in multiprocessing.get_all_start_methods()


def _encode(value, arrays, offset):
    """(JSON-able tree, end offset) for a batch; the arrays to write go to ``arrays``."""
    if value is None:
        return None, offset
    if isinstance(value, (tuple, list)):
        items = []
        for v in value:
            item, offset = _encode(v, arrays, offset)
            items.append(item)
        return {"t" if isinstance(value, tuple) else "l": items}, offset
    if isinstance(value, dict):
        items = []
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict keys in a batch must be strings, received {key!r}.")
            item, offset = _encode(v, arrays, offset)
            items.append([key, item])
        return {"d": items}, offset
    a = np.ascontiguousarray(_data_convert.to_numpy(value))
    if a.dtype.hasobject or a.dtype.kind not in "biufc":
        raise TypeError(f"a batch holds an array of dtype {a.dtype}, which is not numeric.")
    offset = -(-offset // 64) * 64  # aligned for the core's SIMD loads after the copy
    arrays.append((a, offset))
    return {"a": [a.dtype.str, list(a.shape), offset]}, offset + a.nbytes


def _child(dataset, conn, inherited):
    from multiprocessing import shared_memory
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us
    for c in inherited:  # other workers' pipe ends: a dead parent must mean EOF here
        c.close()
    block = None  # reused from batch to batch: fresh pages cost a fault each
    try:
        while True:
            try:
                (index,) = struct.unpack("<q", conn.recv_bytes())
            except EOFError:
                return
            if index == _STOP:
                return
            try:
                arrays = []
                batch = _data_convert.unpack(dataset[index], f"PyDataset.__getitem__({index})")
                tree, size = _encode(batch, arrays, 0)
                if block is None or block.size < size:
                    # The parent has copied the last batch out (it asked for this one).
                    new = shared_memory.SharedMemory(create=True, size=max(4096, 2 * size))
                    if block is not None:
                        block.close()
                        block.unlink()
                    block = new
                for a, off in arrays:
                    dst = np.ndarray(a.shape, a.dtype, buffer=block.buf, offset=off)
                    dst[...] = a
                    del dst
                header = {"shm": block.name, "size": size, "tree": tree}
            except BaseException as e:  # sent back as text, raised in the parent
                header = {"error": type(e).__name__, "message": str(e),
                          "traceback": traceback.format_exc()}
            conn.send_bytes(json.dumps(header).encode())
    finally:
        if block is not None:
            block.close()
            block.unlink()


def _decode(tree, buf, size):
    if tree is None:
        return None
    if "t" in tree:
        return tuple(_decode(v, buf, size) for v in tree["t"])
    if "l" in tree:
        return [_decode(v, buf, size) for v in tree["l"]]
    if "d" in tree:
        return {k: _decode(v, buf, size) for k, v in tree["d"]}
    dtype, shape, off = tree["a"]
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise RuntimeError("A worker process sent an array of object dtype.")
    count = int(np.prod(shape, dtype=np.int64))
    if off < 0 or off + count * dtype.itemsize > size:
        raise RuntimeError("A worker process sent a header that does not fit its block.")
    view = np.ndarray(tuple(shape), dtype, buffer=buf, offset=off)
    out = view.copy()
    del view
    return out


_BUILTIN_ERRORS = {e.__name__: e for e in (
    ValueError, TypeError, IndexError, KeyError, RuntimeError, FileNotFoundError, OSError,
    MemoryError, ZeroDivisionError, AttributeError, NotImplementedError, AssertionError,
    ArithmeticError, LookupError)}


class Workers:
    """``workers`` forked processes, each driven by one prefetch thread (thread k talks only
    to process k, so the pipes need no lock)."""

    def __init__(self, dataset):
        self._dataset = dataset
        self._procs, self._conns, self._blocks = [], [], []

    def start(self, n):
        from multiprocessing import resource_tracker
        # One tracker for parent and children: a block registered by a child is unregistered
        # by the parent's unlink.
        resource_tracker.ensure_running()
        ctx = multiprocessing.get_context("fork")
        for _ in range(n):
            parent, child = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_child, args=(self._dataset, child, self._conns + [parent]),
                            daemon=True, name="shenjing-pydataset-worker")
            p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)
            self._blocks.append(None)

    def stop(self):
        for c in self._conns:
            try:
                c.send_bytes(struct.pack("<q", _STOP))
            except OSError:
                pass  # already gone
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
        for c in self._conns:
            c.close()
        for p, b in zip(self._procs, self._blocks):
            if b is not None:
                b.close()
                if p.exitcode != 0:  # a worker that died did not unlink its block
                    try:
                        b.unlink()
                    except FileNotFoundError:
                        pass
        self._procs, self._conns, self._blocks = [], [], []

    def fetch(self, k, index):
        """Batch ``index`` made by process k."""
        from multiprocessing import shared_memory
        conn = self._conns[k]
        try:
            conn.send_bytes(struct.pack("<q", int(index)))
            header = json.loads(conn.recv_bytes().decode())
        except (EOFError, OSError):
            self._procs[k].join(timeout=1)
            code = self._procs[k].exitcode
            raise RuntimeError(f"A PyDataset worker process (pid {self._procs[k].pid}) died "
                               f"while making batch {index} (exit code {code}).") from None
        if "error" in header:
            err = _BUILTIN_ERRORS.get(header["error"], RuntimeError)
            name = header["error"] if err is RuntimeError else ""
            raise err(f"{name + ': ' if name else ''}{header['message']}\n(raised in a PyDataset "
                      f"worker process for batch {index}; its traceback:\n"
                      f"{header['traceback']})")
        block = self._blocks[k]
        if block is None or block.name != header["shm"]:
            if block is not None:
                block.close()  # the worker replaced it by a bigger one
            block = self._blocks[k] = shared_memory.SharedMemory(name=header["shm"])
        return _decode(header["tree"], block.buf, min(int(header["size"]), block.size))
