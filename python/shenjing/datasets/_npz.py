"""Reading ``.npz`` files whose arrays may be object arrays (Keras's imdb.npz and
reuters.npz hold lists of word ids that way) without the pickle module: numeric arrays with
``allow_pickle=False``, object arrays through the plain-data reader (_safe_pickle.py)."""
import io
import zipfile

import numpy as np

from shenjing.datasets import _safe_pickle


def read_npy(raw, what):
    """One ``.npy`` stream (bytes) as an array."""
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            # 3.0 differs from 2.0 only in the header's text encoding (UTF-8 vs latin-1).
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as e:
        raise ValueError(f"{what} is not a valid .npy array: {e}") from e
    if dtype != object:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    try:
        arr, _ = _safe_pickle.loads(raw[fp.tell():])
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(f"{what}: the pickled object array does not match its header's "
                         f"shape {tuple(shape)}.")
    return arr


def load_npz(path):
    """{name: array} of every ``.npy`` member of the ``.npz`` at ``path``."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    arrays[member[:-4]] = read_npy(archive.read(member), f"{path}:{member}")
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path} is not a valid .npz (zip) file: {e}") from e
    return arrays
