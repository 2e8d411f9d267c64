"""Property-based tests of the JSON API against its own OpenAPI document (schemathesis):
whatever the parameters, no 500, and every answer matches the document (status codes,
content types, bodies). Bounded in examples so the folder stays fast."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance
from webkit import WebNode

from cronhive.web._openapi import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_served_document_is_the_one_tested(node: WebNode) -> None:
    assert node.http().get(node.url("/api/v1/openapi.json")).json() == openapi_document()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_keeps_to_its_document(case: Case[Any], node: WebNode) -> None:
    token = getattr(node, "fuzz_token", None) or node.token("fuzzer", groups=["ops"])
    node.fuzz_token = token  # type: ignore[attr-defined]
    if not getattr(node, "fuzz_jobs", None):
        node.job("user:fuzzer", "fuzz-me", ["true"], cron="0 4 * * *")
        node.fuzz_jobs = True  # type: ignore[attr-defined]
    case.call_and_validate(
        base_url=node.url(""),
        session=node.http(token),
        verify=str(node.certs.ca_cert),
        # Cursors (`after`, `before`) are opaque strings the server made; any other string
        # is rightly a 400, which this check would call "valid data rejected".
        excluded_checks=[positive_data_acceptance],
    )
