"""Live swap on a changed artifact: poll each served artifact directory, reload what changed.

``compress run NAME --force`` writes the new artifact beside the old one and renames it into place,
so a change shows as a new ``manifest.json`` (another inode or mtime). The watcher waits until the
directory has stayed the same for one more interval, then calls :meth:`Engine.reload`; a reload
that fails is logged and the old version keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serve.engine import Engine

log = logging.getLogger("serve")
Signature = tuple[int, int, int] | None


def signature(directory: str | Path) -> Signature:
    """(inode, mtime, size) of the artifact's manifest; None while it is missing (mid-rename)."""
    try:
        st = os.stat(Path(directory) / "manifest.json")
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


async def watch_artifacts(engine: Engine, interval: float) -> None:
    """Reload every model whose artifact changed, checking every ``interval`` seconds; runs until cancelled."""
    seen = {name: signature(lane.current.model.spec.artifact) for name, lane in engine.lanes.items()}
    changed: dict[str, Signature] = {}
    while True:
        await asyncio.sleep(interval)
        for name, lane in engine.lanes.items():
            now = signature(lane.current.model.spec.artifact)
            if now == seen[name] or now is None:
                changed.pop(name, None)
                continue
            if changed.get(name) != now:  # wait until it has stayed the same for one interval
                changed[name] = now
                continue
            changed.pop(name)
            seen[name] = now
            try:
                version = await engine.reload(name)
            except Exception as e:
                log.error("%s: the changed artifact could not be loaded (%s); the old version keeps serving",
                          name, e)
            else:
                log.info("%s: artifact changed on disk; serving version %s", name, version)
