"""The alert and case store: SQLAlchemy 2 models, Alembic migrations, ingest, audit trail.

An optional extra (``pip install assay[store]``): the core engine never imports it.
"""

from __future__ import annotations

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ..errors import UsageError

    raise UsageError("the store needs the 'store' extra: pip install 'assay[store]'") from exc

from .audit import AuditReport, verify_audit
from .db import Store, open_store
from .ingest import IngestReport, ingest_alerts

__all__ = ["AuditReport", "IngestReport", "Store", "ingest_alerts", "open_store", "verify_audit"]
