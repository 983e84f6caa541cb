"""The durable state store: outbox, what the portal holds, cursors and the audit trail."""

from connector.store.audit import AuditCheck, verify_audit
from connector.store.engine import make_engine
from connector.store.sql import SqlStore

__all__ = ["AuditCheck", "SqlStore", "make_engine", "verify_audit"]
