"""The size of one core's L2 cache, as Linux reports it: what the depthwise strategy's chunks are sized to.

The depthwise strategy (:mod:`.depthwise`) adds one shifted product per
kernel tap into its chunk's result, so a chunk's slab, result and product
are read once per tap; they should stay in the core's L2 cache between taps.
How large that is differs between machines (1 MiB a core on AMD's Zen 4, 2
MiB on Intel's Sapphire Rapids), and a fixed budget is too large on one or
too small on the other: on a 2-core Intel Xeon VM with 2 MiB of L2 a core,
the bench's depthwise 3x3 took 12.8 ms with 2 MiB chunks and 15.1 ms with 4
MiB ones, a depthwise 7x7 15.0 against 21.8 ms (``docs/numpy-backend.md``).

Linux describes each cache of a CPU under
``/sys/devices/system/cpu/cpu0/cache/index*/`` (files ``level``, ``type``
and ``size``); elsewhere, or where those files cannot be read,
:func:`l2_bytes` returns None and the caller keeps its default.
"""

from __future__ import annotations

import os
import re

__all__ = ["l2_bytes", "parse_size", "SYSFS_CACHES"]

#: Where Linux lists the caches of the first CPU.
SYSFS_CACHES = "/sys/devices/system/cpu/cpu0/cache"

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int | None:
    """Bytes of a sysfs cache size (``'2048K'``, ``'1M'``, ``'512'``), or None if it is not one.

    >>> parse_size("2048K"), parse_size("1M\\n"), parse_size("64"), parse_size("big")
    (2097152, 1048576, 64, None)
    """
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, flags=re.IGNORECASE)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (OSError, ValueError):
        return None


def l2_bytes(root: str = SYSFS_CACHES) -> int | None:
    """Bytes of the level-2 data (or unified) cache of the CPU described at ``root``, or None where unknown.

    >>> size = l2_bytes()
    >>> size is None or size > 0
    True
    """
    try:
        entries = sorted(e for e in os.listdir(root) if e.startswith("index"))
    except OSError:
        return None
    for entry in entries:
        level = _read(os.path.join(root, entry, "level"))
        kind = _read(os.path.join(root, entry, "type"))
        size = _read(os.path.join(root, entry, "size"))
        if level is None or kind is None or size is None:
            continue
        if level.strip() == "2" and kind.strip() in ("Unified", "Data"):
            found = parse_size(size)
            if found:
                return found
    return None
