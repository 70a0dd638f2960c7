"""Atomic file writes: a save never leaves a half-written file where the previous one was.

A save writes ``.<basename>.<random>.tmp`` beside the target and renames it into place. While
it writes, it holds an exclusive ``flock`` on that temporary file; the kernel drops the lock
when the process dies, however it dies. So the next save of the same target can tell the
temporaries of killed saves (unlocked) from those of live ones (locked, possibly in another
process) and removes only the former.
"""
import os
import re
import stat
import tempfile
import time

try:
    import fcntl
except ImportError:  # Windows: no flock; fall back to the age of the temporary file
    fcntl = None

# Where flock is missing, a temporary this old is taken as left by a dead save.
_STALE_AGE_S = 3600


def atomic_write(path, write):
    """Calls ``write(f)`` on a temporary file beside ``path``, syncs it to disk and renames it
    over ``path``. If anything fails (an exception, a full disk, a crash), ``path`` still holds
    its previous content and the temporary file is removed where possible (or, after a kill,
    by the next save of ``path``). The file gets the mode a plain ``open(path, 'w')`` would
    give: an existing file's mode is kept, a new one follows the umask."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Cannot save to {path!r}: the folder {folder!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save to {path!r}: it is a directory.")
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    fd, tmp = _locked_temporary(folder, base)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _mode_for(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
            # Renamed while still locked, so no other save ever sees it unlocked under its
            # temporary name.
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _locked_temporary(folder, base):
    """(fd, path) of a new temporary file for ``base``, exclusively locked. Another save may
    remove it between its creation and the lock (it was unlocked then): then try again."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + base + ".", suffix=".tmp")
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


def _remove_stale_temporaries(folder, base):
    """Removes the temporaries of earlier saves of ``base`` that no live save holds."""
    pattern = re.compile(re.escape("." + base + ".") + r"[a-z0-9_]{8}\.tmp")
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        tmp = os.path.join(folder, name)
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if fcntl is None:
                if time.time() - st.st_mtime < _STALE_AGE_S:
                    continue
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live save is writing it
            # Still the file we locked (not renamed into place, not replaced meanwhile)?
            try:
                if os.stat(tmp, follow_symlinks=False).st_ino != st.st_ino:
                    continue
            except OSError:
                continue
            try:
                os.unlink(tmp)
            except OSError:
                pass
        finally:
            os.close(fd)


def _mode_for(path):
    """The permission bits ``open(path, 'w')`` would leave: the existing file's, or 0666
    less the umask for a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask():
    # /proc gives it without changing it; os.umask is a set-and-restore that could race with
    # another thread creating files.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
