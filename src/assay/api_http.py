"""The REST API over the store (``assay serve``; optional extra ``assay[api]``).

One error hierarchy mapped to HTTP in one place (``STATUS``), one JSON error shape
``{"error": {"code": ..., "message": ...}}``. Every endpoint but /health needs a bearer
token; a token sees only its purposes, and another purpose's alert or case is a 404.
"""

# No "from __future__ import annotations" here: FastAPI reads these annotations at run time.


from datetime import datetime
from typing import Annotated, Any

try:
    from fastapi import Depends, FastAPI, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, Field
except ImportError as exc:  # pragma: no cover - only without the extra
    from .errors import UsageError

    raise UsageError("the API needs the 'api' extra: pip install 'assay[api]'") from exc

from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import AssayError
from .store import Store
from .store.cases import (
    DISPOSITIONS,
    STATUSES,
    Actor,
    Conflict,
    Forbidden,
    NotFound,
    add_note,
    approve,
    assign,
    authenticate,
    set_disposition,
    set_status,
    visible,
)
from .store.models import Alert, Case, CaseNote, EvidenceRow
from .store.scores import score


class Unauthorized(AssayError):
    """No token, or not a valid one."""


STATUS = {Unauthorized: 401, NotFound: 404, Forbidden: 403, Conflict: 409}
# ids and offsets a database integer can hold (a larger one is a 422, not a crash)
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
bearer = HTTPBearer(auto_error=False)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorShape(BaseModel):
    error: ErrorBody


class StatusChange(BaseModel):
    status: str = Field(description=f"one of {', '.join(STATUSES)}")


class Assignment(BaseModel):
    assignee: str | None = Field(default=None, max_length=128)


class Note(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Disposition(BaseModel):
    disposition: str = Field(description=f"one of {', '.join(DISPOSITIONS)}")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _alert(a: Alert) -> dict[str, Any]:
    return {"alert_id": a.alert_id, "purpose": a.purpose, "scenario": a.scenario,
            "scenario_version": a.scenario_version, "key": a.key, "ts": a.ts.isoformat(),
            "trigger_event_id": a.trigger_event_id, "value": a.value, "threshold": a.threshold,
            "severity": a.severity, "evidence": a.evidence, "evidence_truncated": a.evidence_truncated,
            "case_id": a.case_id}


def _case(c: Case) -> dict[str, Any]:
    return {"id": c.id, "purpose": c.purpose, "key": c.key, "status": c.status, "assignee": c.assignee,
            "disposition": c.disposition, "pending_disposition": c.pending_disposition,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


def _alert_filters(q, scenario: str | None, severity: str | None, key: str | None,  # type: ignore[no-untyped-def]
                   since: datetime | None, until: datetime | None):
    """The filters alerts and cases share: scenario, severity, key and the alert's time range."""
    for column, value in ((Alert.scenario, scenario), (Alert.severity, severity), (Alert.key, key)):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(Alert.ts >= since)
    if until is not None:
        q = q.where(Alert.ts <= until)
    return q


def _page(store: Store, q, order, limit: int, offset: int, render) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(q.subquery()))
        rows = session.execute(q.order_by(*order).limit(limit).offset(offset)).scalars()
        return {"total": total, "items": [render(r) for r in rows]}


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="assay", version="0.1.0",
                  responses={401: {"model": ErrorShape}, 403: {"model": ErrorShape}, 404: {"model": ErrorShape},
                             409: {"model": ErrorShape}, 422: {"model": ErrorShape}})

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next):  # type: ignore[no-untyped-def]
        # PostgreSQL text cannot hold NUL; no identifier or note needs one: refuse it up front
        raw = request.url.path + "?" + (request.url.query or "")
        body = await request.body()
        if "%00" in raw or "\x00" in raw or b"\x00" in body or b"\\u0000" in body:
            return _error(422, "ValidationError", "text may not contain NUL characters")
        return await call_next(request)

    @app.exception_handler(AssayError)
    async def assay_error(_: Request, exc: AssayError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        return _error(status, type(exc).__name__, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", []))
        return _error(422, "ValidationError", f"{where}: {first.get('msg', 'invalid request')}")

    def actor(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        if creds is None or creds.scheme.lower() != "bearer":
            raise Unauthorized("a bearer token is required")
        try:
            return authenticate(store, creds.credentials)
        except Forbidden:
            raise Unauthorized("unknown or revoked token") from None

    Who = Annotated[Actor, Depends(actor)]

    @app.get("/health")
    def health() -> dict[str, str]:
        with store.session() as session:
            session.execute(select(1))
        return {"status": "ok"}

    @app.get("/alerts")
    def list_alerts(who: Who, purpose: str | None = None, scenario: str | None = None,
                    severity: str | None = None, key: str | None = None, status: str | None = None,
                    since: datetime | None = None,
                    until: datetime | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    offset: Offset = 0) -> dict[str, Any]:
        purposes = [p for p in who.purposes if purpose in (None, p)]
        q = _alert_filters(select(Alert).where(Alert.purpose.in_(purposes)), scenario, severity, key, since, until)
        if status is not None:  # the status of the alert's case
            q = q.where(Alert.case_id.in_(select(Case.id).where(Case.status == status)))
        return _page(store, q, (Alert.ts, Alert.alert_id), limit, offset, _alert)

    @app.get("/alerts/{alert_id}")
    def get_alert(alert_id: str, who: Who) -> dict[str, Any]:
        with store.session() as session:
            return _alert(visible(session, Alert, alert_id, who, "alert"))

    @app.get("/cases")
    def list_cases(who: Who, purpose: str | None = None, status: str | None = None, key: str | None = None,
                   scenario: str | None = None, severity: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Offset = 0) -> dict[str, Any]:
        """Cases; ``scenario``, ``severity`` and the time range select cases holding such an alert."""
        purposes = [p for p in who.purposes if purpose in (None, p)]
        q = select(Case).where(Case.purpose.in_(purposes))
        if status is not None:
            q = q.where(Case.status == status)
        if key is not None:
            q = q.where(Case.key == key)
        if scenario is not None or severity is not None or since is not None or until is not None:
            q = q.where(Case.id.in_(_alert_filters(select(Alert.case_id), scenario, severity, None, since, until)))
        return _page(store, q, (Case.id,), limit, offset, _case)

    @app.get("/cases/{case_id}")
    def get_case(case_id: CaseId, who: Who) -> dict[str, Any]:
        with store.session() as session:
            c = visible(session, Case, case_id, who, "case")
            alerts = session.execute(select(Alert).where(Alert.case_id == c.id).order_by(Alert.ts)).scalars().all()
            ids = [a.alert_id for a in alerts]
            rows = session.execute(select(EvidenceRow).where(EvidenceRow.alert_id.in_(ids))
                                   .order_by(EvidenceRow.ts, EvidenceRow.id)).scalars().all() if ids else []
            notes = session.execute(select(CaseNote).where(CaseNote.case_id == c.id)
                                    .order_by(CaseNote.id)).scalars().all()
            seen: set[str] = set()
            timeline = []
            for r in rows:  # one entry per event row, in time order
                marker = f"{r.event_id}|{sorted(r.data.items())}"
                if marker not in seen:
                    seen.add(marker)
                    timeline.append({"ts": r.ts.isoformat(), "event_id": r.event_id, "row": r.data})
            return {**_case(c), "alerts": [_alert(a) for a in alerts], "timeline": timeline,
                    "notes": [{"author": n.author, "at": n.at.isoformat(), "text": n.text} for n in notes]}

    @app.get("/entities/{key}/score")
    def entity_score(key: str, purpose: Annotated[str, Query(min_length=1, max_length=64)],
                     who: Who) -> dict[str, Any]:
        """A key's risk score within exactly one purpose (there is no cross-purpose score)."""
        return score(store, key, purpose, who)

    @app.post("/cases/{case_id}/status")
    def change_status(case_id: CaseId, body: StatusChange, who: Who) -> dict[str, Any]:
        return _case(set_status(store, case_id, body.status, who))

    @app.post("/cases/{case_id}/assign")
    def change_assignee(case_id: CaseId, body: Assignment, who: Who) -> dict[str, Any]:
        return _case(assign(store, case_id, body.assignee, who))

    @app.post("/cases/{case_id}/notes")
    def post_note(case_id: CaseId, body: Note, who: Who) -> dict[str, Any]:
        note = add_note(store, case_id, body.text, who)
        return {"id": note.id, "author": note.author, "text": note.text}

    @app.post("/cases/{case_id}/disposition")
    def change_disposition(case_id: CaseId, body: Disposition, who: Who) -> dict[str, Any]:
        return _case(set_disposition(store, case_id, body.disposition, who))

    @app.post("/cases/{case_id}/approve")
    def approve_disposition(case_id: CaseId, who: Who) -> dict[str, Any]:
        return _case(approve(store, case_id, who))

    return app

