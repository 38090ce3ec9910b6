"""Contract fuzzing: schemathesis drives a live broker from the document it serves, every
operation with data that fits the document and data that does not (its coverage and fuzzing
phases, `--mode all`), and holds every answer to the document (status declared, content type,
body schema, headers), to no 5xx, and to no secret canary in any body or header; then every
line the broker logged is one well-formed record below ERROR with no canary and no credential.
What it covers and leaves out: docs/contract-fuzzing.md.

The engine is driven directly (what `schemathesis run` does): its pytest integration needs the
schema at collection time, or reaches into pytest internals (`Node._nodeid`) that pytest 9.2
no longer has when the schema comes from a fixture, as a live server's must."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.core.result import Ok
from schemathesis.engine import from_schema

from tests.contract.fuzz_run import FuzzRun
from tests.contract.live import (
    GITHUB_APP,
    MACHINE,
    SECRET_CANARIES,
    TENANT,
    Seeded,
    live_broker,
)
from tests.helpers import ADMIN_TOKEN

SEED = 14
MAX_EXAMPLES = 100
"""Per operation in the fuzzing phase, positive and negative drawn together; the coverage
phase adds its own deterministic cases (boundaries, each constraint broken in turn)."""
SECRET_READ = "/v1/runtime/secrets/{name}"
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) \S+ ")
"""A line `broker serve` logs (basicConfig's format), below ERROR: a client's bad input is
never the broker's error, and a line that does not start so was injected or is a traceback."""


@schemathesis.check
def no_secret_canary(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """No canary in a body or a header; a granted runtime read answers its own secret."""
    granted = case.operation.path == SECRET_READ and response.status_code == 200
    answered = response.json()["value"] if granted else None
    texts = [response.text, *(f"{k}: {v}" for k, v in response.headers.items())]
    for index, canary in enumerate(SECRET_CANARIES):
        if canary != answered:
            assert not any(canary in text for text in texts), f"secret canary #{index} answered"
    return None


def fuzz_config(seeded: Seeded) -> schemathesis.Config:
    no_responses = {"extra-data-sources": {"responses": False}}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": seeded.url,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {
                # ids are steered by `steered` alone: one taken from a response could send
                # a delete to the connections every other operation needs
                "coverage": no_responses,
                "fuzzing": no_responses,
                "stateful": {"enabled": False},
            },
            "checks": {
                # a schema-valid request may still be refused by a rule the schema cannot say
                # (an unknown connector, a key that is not PEM): declared 4xx answers
                "positive_data_acceptance": {"enabled": False},
            },
            "auth": {
                "openapi": {
                    "admin": {"bearer": ADMIN_TOKEN},
                    "runtime": {"bearer": seeded.runtime_token},
                }
            },
        }
    )


def known_values(seeded: Seeded, method: str) -> dict[str, list[str]]:
    """Real values by parameter name: random ones mostly end in "not found", these reach
    the handlers' real work. A delete gets a connection of its own, and a put no OAuth app
    of ours: both would take the canaries away from every later operation."""
    connections = [seeded.stripe_connection, seeded.machine_connection]
    return {
        "connection_id": [seeded.doomed_connection] if method == "delete" else connections,
        "tenant_id": [TENANT],
        "credential_key": [] if method == "put" else [GITHUB_APP],
        "token": [seeded.form_token, seeded.oauth_token],
        "name": ["api_key", "webhook_secret"],
        "connector": ["stripe", "github", MACHINE],
    }


BODY_FIELDS = {"connection_id": {"type": "string"}, "connector": {"type": "string"}}
"""The body fields steered, with their schemas in the document: any string (an unknown one is
a 404)."""


def parameter_schemas(context: HookContext) -> dict[str, Any]:
    assert context.operation is not None
    declared = context.operation.definition.raw.get("parameters", [])
    return {param["name"]: param["schema"] for param in declared}


def steered(
    context: HookContext, values: Any, seeded: Seeded, schemas: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """`values` as generated, or with a known name's value, if the document allows it, given
    one of the real values instead. Only an allowed value is replaced (by another allowed one):
    schemathesis marked each case positive or negative when it drew it, and keeps the mark."""
    if not isinstance(values, dict) or not values or context.operation is None:
        return st.just(values)
    known = known_values(seeded, context.operation.method.lower())

    def choices(name: str, value: Any) -> st.SearchStrategy[Any]:
        allowed = name in schemas and Draft202012Validator(schemas[name]).is_valid(value)
        return st.sampled_from([value, *known.get(name, [])]) if allowed else st.just(value)

    return st.fixed_dictionaries({name: choices(name, value) for name, value in values.items()})


def fuzz(seeded: Seeded) -> FuzzRun:
    served = schemathesis.openapi.from_url(f"{seeded.url}/openapi.json", config=fuzz_config(seeded))
    # schemathesis leaves out the operation that served the document unless a filter names
    # it: this one names every path
    schema = served.include(path_regex="^/")

    @schema.hook
    def flatmap_path_parameters(context: HookContext, params: Any) -> st.SearchStrategy[Any]:
        return steered(context, params, seeded, parameter_schemas(context))

    @schema.hook
    def flatmap_query(context: HookContext, params: Any) -> st.SearchStrategy[Any]:
        return steered(context, params, seeded, parameter_schemas(context))

    @schema.hook
    def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
        return steered(context, body, seeded, BODY_FIELDS)

    run = FuzzRun.of(from_schema(schema).execute())
    run.documented = sum(len(item) for item in served.raw_schema["paths"].values())
    run.operations = [op.ok().label for op in schema.get_all_operations() if isinstance(op, Ok)]
    return run


def log_problems(log: Path, secrets: tuple[str, ...]) -> list[str]:
    problems = []
    lines = log.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines[1:], start=2):  # the first: `broker: serving ...`
        if not LOG_RECORD.match(line):
            problems.append(f"line {number} is not a record below ERROR: {line[:200]!r}")
        problems += [f"line {number} holds secret #{i}" for i, s in enumerate(secrets) if s in line]
    return problems


def test_the_served_document_holds_under_fuzzing(tmp_path: Path) -> None:
    with live_broker(tmp_path) as seeded:
        run = fuzz(seeded)
    assert len(run.operations) == run.documented, run.operations
    problems = run.errors + run.failures
    problems += [
        f"{operation}: sent {sorted(run.modes_of(operation))} data only"
        for operation in run.operations
        if run.modes_of(operation) != {"positive", "negative"}
    ]
    problems += log_problems(seeded.log, SECRET_CANARIES + seeded.credentials)
    assert not problems, f"{len(problems)} problems in {run.total()} cases:\n" + "\n".join(
        problems[:40]
    )
