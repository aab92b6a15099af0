"""Writing an artifact directory atomically: staged beside its target, renamed into place.

A run stages into ``.NAME.partial-HOST-PID-XXXX`` next to ``NAME``. An interrupted run deletes its
staging directory; one that was killed outright (``kill -9``, a lost machine) cannot, so the next run
writing beside it removes the staging directories whose process is gone, on this host (a live run's
is never touched, nor one of another host sharing the filesystem, nor a recent one of unknown owner).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from compress import CompressError

log = logging.getLogger(__name__)

# staging directories without an owner (older releases) count as orphans once untouched this long
UNOWNED_ORPHAN_SECONDS = 3600
_OWNED = re.compile(r"\.partial-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[^-]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def is_orphan(staging: Path, now: float | None = None) -> bool:
    """True when ``staging`` belongs to a run that is gone (see the module's docstring)."""
    m = _OWNED.search(staging.name)
    if m is None:
        return (now or time.time()) - staging.stat().st_mtime > UNOWNED_ORPHAN_SECONDS
    return m["host"] == _host() and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"]))


def sweep_orphans(out: Path) -> list[Path]:
    """Remove the staging directories of killed runs beside ``out``; returns what was removed."""
    removed = []
    for p in sorted(out.parent.glob(f".{out.name}.partial-*")):
        if p.is_dir() and is_orphan(p):
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            shutil.rmtree(p, ignore_errors=True)
            log.warning("removed %s, left by a run that was killed (%.1f MB)", p, size / 1e6)
            removed.append(p)
    return removed


def check_writable(out: Path, force: bool) -> None:
    """Fail early when ``out`` exists and may not be replaced."""
    if out.exists() and not force:
        raise CompressError(f"{out} already exists; pass --force to replace it, or choose --out")
    if out.exists() and not out.is_dir():
        raise CompressError(f"{out} exists and is not a directory")


@contextlib.contextmanager
def staged_directory(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; on success rename it to ``out``, else delete it.

    The rename is atomic on one filesystem; an existing ``out`` (with ``force``) is moved aside first
    and removed only once the new artifact is in place.
    """
    check_writable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{_host()}-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the artifact should not be
    try:
        yield tmp
        check_writable(out, force)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name[-8:]}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:  # also on KeyboardInterrupt
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
