"""Property tests: whatever a policy file or command line holds, no traceback reaches the user."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.errors import ConfigError
from compliance.policy.loader import parse_policy
from tests.conftest import DEMO_POLICY, Backend, Deployment, fill_demo, make_deployment

DEMO = tomllib.loads(DEMO_POLICY)


@pytest.fixture(scope="module")
def cli_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One demo deployment shared by every generated command line (they are all dry runs)."""

    base = tmp_path_factory.mktemp("cli")
    d = make_deployment(Backend("sqlite", base), base / "deploy")
    fill_demo(d, users_count=100, seed=3)
    d.run("create-deletion-records", "--bucket", "closed_accounts", "--execute")
    d.run("create-deletion-batches", "--bucket", "closed_accounts", "--execute")
    yield d
    d.dispose()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=12),
    st.sampled_from(["users", "id", "delete", "anonymize", "retain", "hash", "SELECT 1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(data: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


PATHS = [p for p in _paths(DEMO) if p]


def _replace(data: object, path: tuple, value: object) -> object:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _replace(data[head], rest, value)}
    copy = list(data)  # type: ignore[arg-type]
    copy[head] = _replace(copy[head], rest, value)
    return copy


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values)
def test_any_single_wrong_value_is_a_config_error_or_accepted(path: tuple, value: object) -> None:
    broken = _replace(DEMO, path, value)
    try:
        parse_policy(broken, env={})  # type: ignore[arg-type]
    except ConfigError as exc:
        assert "\n" not in str(exc)
        assert str(exc).strip()


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=10), values, max_size=5))
def test_an_arbitrary_document_never_crashes_the_loader(data: dict) -> None:
    try:
        parse_policy(data, env={})
    except ConfigError as exc:
        assert "\n" not in str(exc)


COMMANDS = [
    "create-deletion-records",
    "create-deletion-batches",
    "review-batch",
    "apply-deletions",
    "purge-compliance-data",
    "verify-audit-log",
]
TOKENS = st.one_of(
    st.sampled_from(
        ["--bucket", "--execute", "--accept", "--reject", "--reviewer", "--reason", "--exclude",
         "--max-batch-size", "--chunk-size", "--json", "closed_accounts", "dsar_erasure", "nope",
         "1", "0", "-5",
         "99999999999999999999", "dpo@example.com", "x@", "1:note", ":", ""]
    ),
    st.text(max_size=8),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), args=st.lists(TOKENS, max_size=6))
def test_no_command_line_ever_shows_a_traceback(
    cli_deployment: Deployment, command: str, args: list[str]
) -> None:
    # Dry runs only: arbitrary input must not be able to change the shared fixture.
    args = [a for a in args if a != "--execute"]
    result = cli_deployment.run(command, *args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    assert "Error: unexpected" not in result.output
    if result.exit_code == 2:
        assert result.stderr.strip(), "a refusal always says why"
