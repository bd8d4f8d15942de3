"""Schemathesis against the gateway's own OpenAPI document: no 500s, responses as documented."""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import HealthCheck, Phase, given, settings

from tests.coordinate.conftest import Node

EXAMPLES = 300


def fuzz(document: dict[str, Any], url: str, ca_file: str, token: str) -> list[str]:
    import schemathesis
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy())
    def run(case: Any) -> None:
        # The operator's token, not a generated one: the fuzzing must get past authentication.
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers = {**headers, "Authorization": f"Bearer {token}"}
        response = case.call(base_url=url, verify=ca_file, timeout=30)
        statuses.append(response.status_code)
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500 and response.status_code not in (503, 504):
            problems.append(f"{where} -> {response.status_code}: {response.text[:200]}")
            return
        try:
            case.validate_response(
                response,
                checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            )
        except Exception as exc:
            problems.append(f"{where} -> {response.status_code}: {type(exc).__name__}: {str(exc)[:300]}")

    run()
    # The fuzzing must have got past the gateway, not only been turned away at its door.
    if sum(status not in (401, 403) for status in statuses) < len(statuses) // 2:
        problems.append(f"most requests were refused: {sorted(statuses)}")
    return problems


async def test_no_server_errors_and_responses_match_the_schema(node: Node) -> None:
    async with node.client() as client:
        document = (await client.get("/api/openapi.json")).json()
    # Operations that would stop the node under test or end the fuzzer's own session have tests
    # of their own.
    for path in list(document["paths"]):
        if "/tree/" in path or path.endswith(("/logout", "/revoke")):
            del document["paths"][path]
    problems = await trio.to_thread.run_sync(fuzz, document, node.url, node.ca_file, await node.token())
    assert problems == [], "\n".join(problems)
