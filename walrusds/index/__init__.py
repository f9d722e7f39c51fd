"""The Postgres index: connection pool, migrations, entries and packs.

Postgres is the durability point of walrusds: a write is acknowledged only after the
transaction that records it has committed with ``synchronous_commit = on``.
"""

from walrusds.index.entries import Index, Located
from walrusds.index.migrate import migrate
from walrusds.index.pool import open_pool

__all__ = ["Index", "Located", "migrate", "open_pool"]
