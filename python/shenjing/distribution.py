"""Data-parallel training over MPI, with Keras 3's ``keras.distribution`` names.

    import shenjing as keras
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    model.fit(x, y, batch_size=256, epochs=5)      # run as: mpirun -np 4 python train.py

Every process runs the same script on the same data. With a ``DataParallel`` distribution set,
``fit`` splits each global batch of ``batch_size`` samples between the processes (ranks), each
computes the gradients of its part in one C++ call, the gradients are summed over the ranks
(weighted by their sample counts, so the average is the global batch's) with MPI allreduce,
and every rank applies the same optimizer step: the weights stay identical everywhere and
equal one process training on the same global batches. Losses and metrics are global; only
rank 0 prints progress and writes files. MPI comes from mpi4py (``pip install
"shenjing[mpi]"``), imported only when a distribution is set.
"""
import sys

import numpy as np

_current = None
_hooked = False


class DataParallel:
    """Data parallelism over the processes of an MPI job: the weights are replicated and each
    global batch is split between the ranks (``devices`` is accepted for Keras compatibility;
    each process is one device here)."""

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None:
            raise ValueError("DataParallel: device_mesh is not supported; shenjing runs one "
                             "process per device, started by mpirun.")
        self.devices = devices
        self.auto_shard_dataset = bool(auto_shard_dataset)

    def __repr__(self):
        return f"<DataParallel over {world_size()} process(es)>"


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("Data-parallel training needs mpi4py and an MPI: pip install "
                          "\"shenjing[mpi]\" (or mpi4py built against your system's MPI).") from e
    return MPI


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Starts MPI (mpi4py does on import). The job's processes and their addresses come from
    ``mpirun``; the arguments, Keras's for its own launcher, must agree with it when given."""
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    if num_processes is not None and num_processes != comm.Get_size():
        raise ValueError(f"initialize: num_processes={num_processes}, but mpirun started "
                         f"{comm.Get_size()} processes.")
    if process_id is not None and process_id != comm.Get_rank():
        raise ValueError(f"initialize: process_id={process_id}, but this is rank "
                         f"{comm.Get_rank()}.")
    return comm


def set_distribution(value):
    """Sets the distribution ``fit``/``evaluate`` use (None: one process, the default)."""
    global _current
    if value is not None and not isinstance(value, DataParallel):
        raise ValueError(f"set_distribution expects a DataParallel or None, received "
                         f"{value!r:.100}.")
    if value is not None:
        initialize()
        _abort_on_uncaught_exception()
    _current = value


def _abort_on_uncaught_exception():
    """A rank that dies of an exception would leave the others waiting in an allreduce for
    ever: print it, then abort the whole MPI job (what ``python -m mpi4py`` does)."""
    global _hooked
    if _hooked:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        _mpi().COMM_WORLD.Abort(1)

    sys.excepthook = hook
    _hooked = True


def distribution():
    """The distribution set by ``set_distribution``, or None."""
    return _current


def comm():
    """The MPI communicator of the current distribution, or None without one."""
    return _mpi().COMM_WORLD if _current is not None else None


def rank():
    """This process's rank (0 without a distribution)."""
    c = comm()
    return c.Get_rank() if c is not None else 0


def world_size():
    """The number of processes training together (1 without a distribution)."""
    c = comm()
    return c.Get_size() if c is not None else 1


def list_devices(device_type=None):
    """One CPU device per process, as Keras names them."""
    return [f"cpu:{i}" for i in range(world_size())]


def shard(count, size=None, index=None):
    """(first, last) rows of this rank's part of a batch of ``count`` rows: contiguous parts
    whose sizes differ by at most one."""
    size = world_size() if size is None else size
    index = rank() if index is None else index
    return index * count // size, (index + 1) * count // size


def allreduce_sum(array):
    """``array`` summed over the ranks, in place (float64 or float32 contiguous arrays)."""
    c = comm()
    if c is not None and c.Get_size() > 1:
        c.Allreduce(_mpi().IN_PLACE, array)
    return array


def broadcast(array, root=0):
    c = comm()
    if c is not None and c.Get_size() > 1:
        c.Bcast(array, root=root)
    return array


def sum_scalars(*values):
    """Python numbers summed over the ranks (one allreduce)."""
    buf = np.array(values, dtype=np.float64)
    allreduce_sum(buf)
    return buf
