"""Failpoints for crash tests: ``WALRUSDS_FAILPOINTS=name[,name...]`` makes the process SIGKILL
itself when it reaches a named point, exactly as a power cut or OOM kill would stop it.

Points (see docs/design.md, "Crash windows"): ``flush_after_claim``, ``flush_after_upload``,
``flush_before_commit``, ``renew_after_upload``, ``renew_before_repoint``; and
``import_after_batch_N`` (``walrusds import`` after its N-th committed Batch). Unset in production;
reading the variable once at import keeps the check to a set lookup.
"""

from __future__ import annotations

import os
import signal

ACTIVE = frozenset(p for p in os.environ.get("WALRUSDS_FAILPOINTS", "").split(",") if p)


def hit(name: str) -> None:
    """SIGKILL this process if ``name`` is an active failpoint."""
    if name in ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
