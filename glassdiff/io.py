"""Atomic writes: nothing half-written is ever left where a reader looks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import sys
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STDOUT = "-"  # an output path meaning standard output


def is_stream(path: str) -> bool:
    """Standard output, or a path that is a character device, a pipe or a socket: written in place, never renamed
    over (so `-o /dev/stdout` writes to standard output and leaves /dev alone)."""
    if path == STDOUT:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def destination(path: str) -> str:
    """Where writing `path` lands: itself for a stream; else the file it names, through any symbolic links (a link
    keeps pointing where it did, and its target gets the new bytes)."""
    return path if is_stream(path) else os.path.realpath(path)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path; when the block succeeds, rename it over `path`'s destination (a file beside the
    destination, so the rename is atomic), or copy its bytes into a stream."""
    target = destination(path)
    stream = is_stream(target)
    folder = tempfile.gettempdir() if stream else os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    try:
        yield tmp
        if stream:
            _copy_into_stream(tmp, target)
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is for the temporary name only
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _copy_into_stream(tmp: str, target: str):
    with open(tmp, "rb") as source:
        data = source.read()
    if target == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        with open(target, "wb") as out:
            out.write(data)


@contextlib.contextmanager
def atomic_dir(path: str):
    """Yield a temporary folder beside `path`; swap it into place only if the block succeeds."""
    path = os.path.realpath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def state_digest(*modules) -> str:
    """sha256 hex of the modules' state dicts (names and fp32 values), to name or compare weights."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()
