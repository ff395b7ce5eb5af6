"""Schemathesis against the OpenAPI document: generated requests never get a 5xx answer."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from assay.api_http import create_app  # noqa: E402
from assay.store.cases import create_token  # noqa: E402
from test_store import run_into, store  # noqa: E402, F401 - the store fixture (SQLite and PostgreSQL)


def test_no_server_errors_on_generated_requests(store):  # noqa: F811
    run_into(store)
    token = create_token(store, "fuzz", "admin", ["fraud"])
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code < 500, (operation.label, response.text)
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, (operation.label, response.text)

    check()
