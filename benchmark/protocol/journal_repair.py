"""Repairing an Optuna journal whose last record was cut off (power loss, a full disk, a killed writer).

Optuna appends one JSON record per line. A torn last line stays in the file, and the next record
appended behind it makes an undecodable line that every later reader stops at. ``repair_journal``
finds the longest prefix of complete, decodable records, keeps a backup of the whole file, truncates
the journal to that prefix and logs one warning; the run then resumes from the records it kept. It
holds the journal's own lock file, so it never cuts a record that another worker is writing.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def complete_prefix_length(data: bytes) -> int:
    """The byte length of the longest prefix of ``data`` made of whole lines that decode as JSON."""
    end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            json.loads(line)
        except ValueError:
            break
        end += len(line)
    return end


def repair_journal(path: Path) -> Path | None:
    """Truncate ``path`` to its complete records if its tail is torn; return the backup's path, or None."""
    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = complete_prefix_length(data)
        if keep == len(data):
            return None
        backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
        with open(path, "r+b") as f:
            f.truncate(keep)
        message = (f"{path}: the journal's last {len(data) - keep} bytes were an incomplete record; "
                   f"truncated to the last complete one (backup: {backup.name})")
        log.warning(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)
        return backup
    finally:
        lock.release()
