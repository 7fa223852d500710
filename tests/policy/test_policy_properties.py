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


# ---------------------------------------------------------------- limits: nesting, numbers, names


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def one_line_config_error(exc: ConfigError) -> None:
    assert "\n" not in str(exc) and str(exc).strip()
    assert len(str(exc)) < 2000, "an error quotes what is wrong, not all of it"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(PATHS),
    depth=st.integers(min_value=1, max_value=400),
    huge=st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1)),
)
def test_deep_nesting_or_a_huge_number_anywhere_is_one_line(
    path: tuple, depth: int, huge: int
) -> None:
    try:
        parse_policy(_replace(DEMO, path, nested(depth)), env={})  # type: ignore[arg-type]
    except ConfigError as exc:
        one_line_config_error(exc)
    else:
        assert len(path) + depth <= 32, "only what nests within the limit loads"
    with pytest.raises(ConfigError, match="outside 64-bit whole numbers") as refused:
        parse_policy(_replace(DEMO, path, nested(depth % 5, huge)), env={})  # type: ignore[arg-type]
    one_line_config_error(refused.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(min_value=1, max_value=20_000),
    digits=st.integers(min_value=1, max_value=20_000),
    table=st.booleans(),
)
def test_a_policy_file_nested_or_numbered_beyond_the_limits_is_one_line(
    tmp_path_factory: pytest.TempPathFactory, depth: int, digits: int, table: bool
) -> None:
    """Through the file, where tomllib itself recursed (5,000 deep: RecursionError)."""
    from compliance.policy.loader import load_policy

    if table:
        scratch = "x = " + "{ a = " * depth + "1" + " }" * depth
    else:
        scratch = "x = " + "[" * depth + "]" * depth
    path = tmp_path_factory.mktemp("toml") / "compliance.toml"
    for extra in (scratch, "x = " + "9" * digits):
        path.write_text(DEMO_POLICY + "\n[scratch]\n" + extra + "\n")
        try:
            load_policy(path, env={})
        except ConfigError as exc:
            one_line_config_error(exc)


NAMES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["--execute", "-x", "closed accounts", "a/../b", "x" * 65, "", "\x00", "é"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(section=st.sampled_from(["buckets", "retention", "systems", "tables"]), name=NAMES)
def test_any_name_for_a_bucket_retention_system_or_table_is_checked(
    section: str, name: str
) -> None:
    from compliance.policy.fields import NAME_PATTERN

    data = dict(DEMO)
    entries = dict(data[section])
    first = next(iter(entries))
    entries[name] = entries.pop(first)
    data[section] = entries
    try:
        policy = parse_policy(data, env={"HELPDESK": "x"})
    except ConfigError as exc:
        one_line_config_error(exc)
        return
    if section == "buckets":
        assert NAME_PATTERN.fullmatch(name) and name in policy.buckets


ENV_NAMES = ["COMPLIANCE_DATABASE_URL", "COMPLIANCE_APP_DATABASE_URL", "COMPLIANCE_EXPORT_DIR",
             "COMPLIANCE_HASH_KEY", "SMTP_PASSWORD", "SLACK_BOT_TOKEN", "COMPLIANCE_PROXY_SECRET",
             "BILLING_DATABASE_URL"]  # fmt: skip
ENV_VALUES = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
    st.sampled_from(["", " " * 40, "mysql://x/y", "sqlite:///\x00", "postgresql://\udcff@h/x"]),
    st.integers(min_value=64 * 1024 - 2, max_value=70_000).map(lambda n: "x" * n),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUES, max_size=4))
def test_any_environment_is_read_or_refused_in_one_line(env: dict[str, str]) -> None:
    from compliance.policy.strategies import MAX_ENV_BYTES, hash_secret

    try:
        parse_policy(DEMO, env=env)
    except ConfigError as exc:
        one_line_config_error(exc)
    else:
        assert all(len(v) <= MAX_ENV_BYTES for n, v in env.items() if n != "BILLING_DATABASE_URL")
    try:
        key = hash_secret(demo_mode=False, env=env)
    except ConfigError as exc:
        one_line_config_error(exc)
    else:
        assert len(key.strip()) >= 32
