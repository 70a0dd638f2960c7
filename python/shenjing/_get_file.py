"""``utils.get_file`` (keras/src/utils/file_utils.py): a file downloaded once into a cache
folder, checked against a hash, optionally extracted.

Unlike Keras, the download goes to a locked temporary file beside its target and is renamed
into place only once complete and matching the hash (``_atomic.atomic_write``), so an
interrupted or corrupt download never sits in the cache under the real name; an archive is
extracted into a temporary folder renamed into place, so a half-extracted folder is never
taken for a complete one.
"""
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from shenjing._atomic import atomic_write

DOWNLOAD_TIMEOUT = 30.0  # seconds without data before giving up


def _default_cache_dir():
    return os.environ.get("SHENJING_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".shenjing")


def resolve_hasher(algorithm, file_hash=None):
    """'sha256' or 'md5': ``auto`` picks sha256 for a 64-character hash, md5 otherwise."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "auto" and file_hash is not None and len(file_hash) == 64:
        return hashlib.sha256()
    if algorithm in ("auto", "md5"):
        return hashlib.md5()
    raise ValueError(f"`hash_algorithm` must be 'auto', 'sha256' or 'md5'. Received: "
                     f"hash_algorithm={algorithm!r}")


def hash_file(fpath, algorithm="sha256", chunk_size=65535):
    hasher = resolve_hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
    """Whether the file's hash (sha256 or md5) is ``file_hash``."""
    hasher = resolve_hasher(algorithm, file_hash)
    return str(hash_file(fpath, hasher, chunk_size)) == str(file_hash).lower()


def _inside(base, name):
    """Whether archive member ``name`` lands inside ``base`` (no absolute path, no '..')."""
    target = os.path.realpath(os.path.join(base, name))
    return os.path.commonpath([base, target]) == base


def _safe_tar_member(base, m):
    """A regular file or folder inside ``base``, or a link whose target is inside too."""
    if m.isdev() or m.isfifo() or not _inside(base, m.name):
        return False
    if m.issym():  # relative to the link's folder
        return _inside(base, os.path.join(os.path.dirname(m.name), m.linkname))
    if m.islnk():  # relative to the archive's root
        return _inside(base, m.linkname)
    return True


def _extract(archive_path, dest, archive_format):
    """Extracts into a temporary folder beside ``dest``, then renames it to ``dest``;
    members that would land outside it (absolute paths, '..', links out) are refused.
    Returns False when the file is none of the given formats."""
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for fmt in formats:
        if fmt not in ("tar", "zip"):
            raise NotImplementedError(fmt)
        is_match = tarfile.is_tarfile if fmt == "tar" else zipfile.is_zipfile
        if not is_match(archive_path):
            continue
        parent = os.path.dirname(os.path.abspath(dest))
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".", dir=parent)
        base = os.path.realpath(tmp)
        try:
            if fmt == "tar":
                with tarfile.open(archive_path) as archive:
                    members = archive.getmembers()
                    for m in members:
                        if not _safe_tar_member(base, m):
                            raise ValueError(f"Archive {archive_path} has a member that "
                                             f"would land outside {dest}: {m.name!r}; "
                                             f"nothing was extracted.")
                    if hasattr(tarfile, "data_filter"):
                        archive.extractall(base, members, filter="data")
                    else:  # the members were checked above
                        archive.extractall(base, members)
            else:
                with zipfile.ZipFile(archive_path) as archive:
                    for name in archive.namelist():
                        if not _inside(base, name):
                            raise ValueError(f"Archive {archive_path} has a member that "
                                             f"would land outside {dest}: {name!r}; "
                                             f"nothing was extracted.")
                    archive.extractall(base)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
    return False


def _download(origin, target, file_hash, hash_algorithm):
    """Downloads ``origin`` into ``target`` atomically; the hash is checked before the
    rename, so a mismatch leaves the cache as it was."""
    print(f"Downloading data from {origin}", file=sys.stderr)
    hasher = resolve_hasher(hash_algorithm, file_hash) if file_hash is not None else None

    def write(out):
        try:
            with urllib.request.urlopen(origin, timeout=DOWNLOAD_TIMEOUT) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    if hasher is not None:
                        hasher.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise OSError(
                f"URL fetch failure on {origin}: {reason}\nThe file could not be downloaded "
                f"(offline?). Download it by hand and save it as {target} (the hash is "
                f"checked when it is read).") from e
        if hasher is not None and hasher.hexdigest() != str(file_hash).lower():
            raise ValueError(
                f"Incomplete or corrupted file detected. The {hasher.name} file hash of the "
                f"download from {origin} is {hasher.hexdigest()}, which does not match the "
                f"provided value of {file_hash}. Nothing was saved.")
    atomic_write(target, write)


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Downloads a file from a URL if it is not already in the cache (Keras's ``get_file``).

    The file goes to ``<cache_dir>/<cache_subdir>/<fname>`` (``cache_dir`` defaults to
    ``$SHENJING_HOME``, else ``~/.shenjing``; falls back to ``/tmp/.shenjing`` when not
    writable); ``fname`` defaults to the URL's last path component. A cached file with a
    ``file_hash`` (sha256 or md5; ``md5_hash`` is the older spelling) that does not match is
    downloaded again; a download that does not match raises ValueError and is not kept.
    With ``extract=True`` (or ``untar=True``) the archive (tar, tar.gz, tar.bz2 or zip) is
    extracted and the folder is returned, named as Keras names it: ``fname`` without its
    extension plus ``_extracted`` when ``fname`` has one, else ``fname`` (the archive is then
    kept as ``<fname>_archive``). The folder is extracted again only when the archive was
    (re)downloaded or the folder is missing.

    Returns:
        The path of the file, or of the extracted folder.

    Raises:
        OSError: the download failed (offline, HTTP error); the message names the URL and
            where to put the file by hand.
        ValueError: the downloaded file does not match ``file_hash``.
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to '
                         'download).')
    if cache_dir is None:
        cache_dir = _default_cache_dir()
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    resolve_hasher(hash_algorithm, file_hash)  # a bad algorithm fails before any download
    base = os.path.expanduser(os.fspath(cache_dir))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass  # not creatable: the writable check below falls back to /tmp
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
                            ".shenjing")
    datadir = os.path.join(base, cache_subdir)
    os.makedirs(datadir, exist_ok=True)
    provided = fname
    fname = os.fspath(fname) if fname is not None else ""
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"Can't parse the file name from the origin provided: "
                             f"'{origin}'.Please specify the `fname` argument.")
    elif os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError(f"Paths are no longer accepted as the `fname` argument. To specify "
                         f"the file's parent directory, use the `cache_dir` argument. "
                         f"Received: fname={fname}")
    extraction_dir = None
    if extract or untar:
        if provided and "." in fname:
            target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            target = os.path.join(datadir, f"{fname}_archive")
    else:
        target = os.path.join(datadir, fname)

    download = force_download or not os.path.exists(target)
    if not download and file_hash is not None and \
            not validate_file(target, file_hash, hash_algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because "
              f"the {resolve_hasher(hash_algorithm, file_hash).name} file hash does not match "
              f"the original value of {file_hash} so we will re-download the data.",
              file=sys.stderr)
        download = True
    if download:
        _download(origin, target, file_hash, hash_algorithm)
    if extraction_dir is None:
        return target
    if download or not os.path.isdir(extraction_dir):
        if not _extract(target, extraction_dir, "tar" if untar else archive_format):
            import warnings
            warnings.warn("Could not extract archive.", stacklevel=2)
    return extraction_dir
