"""Working a case: status, assignment, notes, dispositions with four-eyes approval.

Every change is checked against the actor's role and purposes and appended to the audit
trail with its before and after, in the same transaction as the change.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from ..errors import AssayError
from . import audit
from .db import Store
from .models import Case, CaseNote, Token

ROLES = ("viewer", "analyst", "supervisor", "admin")
STATUSES = ("open", "in_review", "closed")
TRANSITIONS = {("open", "in_review"), ("in_review", "open"), ("in_review", "closed"), ("open", "closed")}
DISPOSITIONS = ("true_positive", "false_positive", "inconclusive", "reported")


class NotFound(AssayError):
    """No such object, or not visible to this actor (the two are never told apart)."""


class Forbidden(AssayError):
    """The actor's role does not allow this change."""


class Conflict(AssayError):
    """The change does not fit the object's current state."""


@dataclass(frozen=True)
class Actor:
    user: str
    role: str
    purposes: tuple[str, ...] = field(default_factory=tuple)

    def can_change(self) -> bool:
        return self.role in ("analyst", "supervisor", "admin")


def visible(session, model, ident, actor: Actor, what: str):  # type: ignore[no-untyped-def]
    """The alert or case if it exists within the actor's purposes; else "not found", never the data."""
    obj = session.get(model, ident)
    if obj is None or obj.purpose not in actor.purposes:
        raise NotFound(f"{what} {ident} not found")
    return obj


def _case(session, case_id: int, actor: Actor) -> Case:  # type: ignore[no-untyped-def]
    return visible(session, Case, case_id, actor, "case")


def _change(store: Store, case_id: int, actor: Actor, action: str, apply) -> Case:  # type: ignore[no-untyped-def]
    with store.session() as session, session.begin():
        case = _case(session, case_id, actor)
        if not actor.can_change():
            raise Forbidden(f"a {actor.role} cannot change cases")
        before = _state(case)
        apply(case)
        case.updated_at = datetime.now(UTC)
        audit.append(session, actor=actor.user, action=action, object_type="case", object_id=str(case.id),
                     before=before, after=_state(case))
        return case


def _state(case: Case) -> dict[str, object]:
    return {"status": case.status, "assignee": case.assignee, "disposition": case.disposition,
            "pending_disposition": case.pending_disposition, "pending_by": case.pending_by}


def set_status(store: Store, case_id: int, status: str, actor: Actor) -> Case:
    if status not in STATUSES:
        raise Conflict(f"status must be one of {', '.join(STATUSES)}, not {status!r}")

    def apply(case: Case) -> None:
        if (case.status, status) not in TRANSITIONS:
            raise Conflict(f"case {case.id} cannot go from {case.status} to {status}")
        if status == "closed" and case.disposition is None:
            raise Conflict(f"case {case.id} needs a disposition before it is closed")
        case.status = status

    return _change(store, case_id, actor, "case.status", apply)


def assign(store: Store, case_id: int, assignee: str | None, actor: Actor) -> Case:
    def apply(case: Case) -> None:
        case.assignee = assignee

    return _change(store, case_id, actor, "case.assigned", apply)


def add_note(store: Store, case_id: int, text: str, actor: Actor) -> CaseNote:
    if not text.strip():
        raise Conflict("a note needs text")
    with store.session() as session, session.begin():
        case = _case(session, case_id, actor)
        if not actor.can_change():
            raise Forbidden(f"a {actor.role} cannot add notes")
        note = CaseNote(case_id=case.id, author=actor.user, at=datetime.now(UTC), text=text)
        session.add(note)
        session.flush()
        audit.append(session, actor=actor.user, action="case.note", object_type="case", object_id=str(case.id),
                     after={"note_id": note.id, "text": text})
        return note


def set_disposition(store: Store, case_id: int, disposition: str, actor: Actor) -> Case:
    """``reported`` waits for a second, different supervisor's approval (four-eyes)."""
    if disposition not in DISPOSITIONS:
        raise Conflict(f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}")

    def apply(case: Case) -> None:
        if case.status == "closed":
            raise Conflict(f"case {case.id} is closed")
        if disposition == "reported":
            case.pending_disposition, case.pending_by = "reported", actor.user
        else:
            case.disposition, case.pending_disposition, case.pending_by = disposition, None, None

    return _change(store, case_id, actor, "case.disposition", apply)


def approve(store: Store, case_id: int, actor: Actor) -> Case:
    if actor.role not in ("supervisor", "admin"):
        raise Forbidden("only a supervisor approves a reported disposition")

    def apply(case: Case) -> None:
        if case.pending_disposition is None:
            raise Conflict(f"case {case.id} has no disposition waiting for approval")
        if case.pending_by == actor.user:
            raise Forbidden("four-eyes: the approval must come from someone other than who asked")
        case.disposition, case.pending_disposition, case.pending_by = case.pending_disposition, None, None

    return _change(store, case_id, actor, "case.approved", apply)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, user: str, role: str, purposes: list[str], *, actor: str = "assay token") -> str:
    """A new bearer token (returned once; only its hash is stored)."""
    if role not in ROLES:
        raise Conflict(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not purposes:
        raise Conflict("a token sees one or more purposes: give --purpose")
    token = "assay_" + secrets.token_urlsafe(32)
    with store.session() as session, session.begin():
        row = Token(token_hash=_hash(token), user=user, role=role, purposes=sorted(set(purposes)),
                    created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
        audit.append(session, actor=actor, action="token.created", object_type="token", object_id=str(row.id),
                     after={"user": user, "role": role, "purposes": row.purposes})
    return token


def revoke_token(store: Store, token_id: int, *, actor: str = "assay token") -> None:
    with store.session() as session, session.begin():
        row = session.get(Token, token_id)
        if row is None or row.revoked_at is not None:
            raise NotFound(f"token {token_id} not found or already revoked")
        row.revoked_at = datetime.now(UTC)
        audit.append(session, actor=actor, action="token.revoked", object_type="token", object_id=str(row.id),
                     before={"revoked": False}, after={"revoked": True})


def authenticate(store: Store, token: str) -> Actor:
    with store.session() as session:
        row = session.execute(select(Token).where(Token.token_hash == _hash(token))).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            raise Forbidden("unknown or revoked token")
        return Actor(row.user, row.role, tuple(row.purposes))
