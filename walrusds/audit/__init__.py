"""Audits and recovery: ``walrusds verify`` and ``walrusds reindex`` (docs/recovery.md).

- :mod:`.classify` — the verdicts (OK, EXPIRING, LOST, CORRUPT, ORPHAN) and the pure rules;
- :mod:`.checker` — reads entries back like the read path and classifies each;
- :mod:`.source` — verify's read-only SQL (pages, sample, orphans);
- :mod:`.sample` — the random sample without a table scan;
- :mod:`.verifier` — verify's walk (sample or full) and its report;
- :mod:`.progress` — a progress line on a terminal;
- :mod:`.reindex` and :mod:`.restore` — rebuilding index rows from packfiles;
- :mod:`.db` — the audit connections (read-only where nothing may change).
"""

from walrusds.audit.classify import PROBLEMS, Finding, Verdict
from walrusds.audit.reindex import ReindexReport, reindex
from walrusds.audit.verifier import Report, VerifyOptions, run_verify

__all__ = ["PROBLEMS", "Finding", "ReindexReport", "Report", "Verdict", "VerifyOptions",
           "reindex", "run_verify"]
