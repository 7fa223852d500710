"""Jurisdictions: each request falls under one law, whose deadline every screen, alert and
figure then uses; a malformed [jurisdictions.X] is refused when the policy loads."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from compliance.dsar import desk
from compliance.dsar.notices import render_notice
from compliance.dsar.requests import next_actions, submit
from compliance.errors import ConfigError
from compliance.ops.alerts import dsar_deadlines
from compliance.policy.jurisdictions import GDPR, parse_jurisdiction
from compliance.policy.loader import parse_policy
from compliance.reports.dsar_stats import dsar_counters, dsar_overview, dsar_split
from compliance.store.models import AuditEvent, DsarRequest
from compliance.store.states import DsarKind, DsarStatus
from tests import factories as make
from tests.conftest import DEMO_POLICY, SUPPORT_STAFF, Deployment, fill_demo, ok

LAWS = """
[jurisdictions.uk_gdpr]
deadline_months = 1
extension_months = 2
working_days = "GB"
countries = ["GB"]

[jurisdictions.ccpa]
deadline_days = 45
extension_days = 45
countries = ["us"]              # compared without regard to case
citation = "CCPA, Cal. Civ. Code § 1798.130"
complaint = "You may contact the California Privacy Protection Agency."

[jurisdictions.lgpd]
deadline_days = 15
countries = ["BR"]
"""
SUBJECTS = 'key = "id"\nemail = "email"\n'
assert DEMO_POLICY.count(SUBJECTS) == 1
POLICY = DEMO_POLICY.replace(SUBJECTS, SUBJECTS + 'jurisdiction_column = "country"\n') + LAWS
#: Received on Tuesday 25 November 2025: a month later is Christmas Day.
RECEIVED = datetime(2025, 11, 25, 9, 0, tzinfo=UTC)
#: Demo users and the country each is given (5 has none).
COUNTRIES = {"1": "GB", "2": "US", "3": "BR", "4": "DE", "5": None}
OFFICER = ("--by", "dpo@example.com")


@pytest.fixture
def world(deployment: Deployment) -> Deployment:
    """A small demo whose first users live in the UK, the US, Brazil, Germany and nowhere."""
    fill_demo(deployment, users_count=12, seed=3)
    with deployment.app_engine.begin() as conn:
        for key, country in COUNTRIES.items():
            conn.execute(
                text("UPDATE users SET country = :country WHERE id = :id"),
                {"country": country, "id": int(key)},
            )
    return deployment


def log(d: Deployment, subject: str, kind: str = "access", **options: Any) -> DsarRequest:
    with d.session() as s:
        made = submit(
            s, d.policy(), d.app_engine, kind=kind, subject_id=subject,
            requested_by=SUPPORT_STAFF, now=RECEIVED, execute=True, **options,
        )  # fmt: skip
        assert made.created
        return made.request


def deadlines(request: DsarRequest) -> tuple[str, date, date]:
    return request.jurisdiction, request.due_at.date(), request.latest_due_at.date()


def count(d: Deployment, model: type) -> int:
    with d.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_a_request_falls_under_the_law_chosen_at_intake_else_its_subjects_else_the_default(
    world: Deployment,
) -> None:
    # Nothing declared: today's GDPR month, extendable to three, whatever the country.
    assert deadlines(log(world, "1")) == ("gdpr", date(2025, 12, 25), date(2026, 2, 25))

    world.write_policy(POLICY)
    requests = {subject: log(world, subject, "erasure") for subject in COUNTRIES}
    assert {subject: deadlines(r) for subject, r in requests.items()} == {
        "1": ("uk_gdpr", date(2025, 12, 29), date(2026, 2, 25)),  # after Christmas, Boxing Day
        "2": ("ccpa", date(2026, 1, 9), date(2026, 2, 23)),  # 45 days, 45 more at most
        "3": ("lgpd", date(2025, 12, 10), date(2025, 12, 10)),  # 15 days, no extension
        "4": ("gdpr", date(2025, 12, 25), date(2026, 2, 25)),  # listed nowhere: the default
        "5": ("gdpr", date(2025, 12, 25), date(2026, 2, 25)),  # no country
    }
    with world.session() as s:
        submitted = s.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "dsar.submitted")
        ).all()
    assert [e["jurisdiction"] for e in submitted] == ["gdpr", "uk_gdpr", "ccpa", "lgpd"] + [
        "gdpr"
    ] * 2

    # Chosen at intake (here, on the command line) wins over the subject's country.
    chosen = world.run(
        "--json", "submit-dsar", "--kind", "access", "--subject-id", "2", "--jurisdiction",
        "lgpd", "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.stdout)["jurisdiction"] == "lgpd"
    # [dsar] default_jurisdiction names the law of everyone no list names.
    world.write_policy(POLICY.replace("[dsar]\n", '[dsar]\ndefault_jurisdiction = "ccpa"\n'))
    assert log(world, "4", "access").jurisdiction == "ccpa"


def test_an_unknown_jurisdiction_or_column_is_one_line_exit_2_and_changes_nothing(
    world: Deployment,
) -> None:
    world.write_policy(POLICY)
    before = count(world, AuditEvent), count(world, DsarRequest)
    unknown = world.run(
        "submit-dsar", "--kind", "access", "--subject-id", "2", "--jurisdiction", "hipaa",
        "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "Error: --jurisdiction must be one of ccpa, gdpr, lgpd, uk_gdpr, got 'hipaa'\n"
    )
    world.write_policy(
        POLICY.replace('jurisdiction_column = "country"', 'jurisdiction_column = "nation"')
    )
    missing = world.run(
        "submit-dsar", "--kind", "access", "--subject-id", "2",
        "--requested-by", "support@example.com", "--execute",
    )  # fmt: skip
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1
    assert "subjects.jurisdiction_column: table 'users' has no column 'nation'" in missing.stderr
    assert (count(world, AuditEvent), count(world, DsarRequest)) == before


def test_an_extension_stays_within_what_the_requests_jurisdiction_allows(
    world: Deployment,
) -> None:
    world.write_policy(POLICY)
    uk, us, br = (log(world, s).reference for s in ("1", "2", "3"))

    def extend(reference: str, *length: str) -> Any:
        return world.run("extend-dsar", reference, *length, "--reason", "many systems",
                         *OFFICER, "--execute")  # fmt: skip

    ok(extend(us, "--days", "30"))
    refused = extend(us, "--days", "16")  # 46 days in all: one more than the CCPA allows
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"Error: {us} would then be due 2026-02-24, later than ccpa allows: 2026-02-23 at the "
        "latest (already extended by 30 days)\n"
    )
    ok(extend(us, "--days", "15"))
    assert extend(br, "--days", "1").exit_code == 2  # the LGPD allows no extension
    # Boxing Day then a weekend: one more day leaves the UK deadline where it was.
    still = extend(uk, "--days", "1")
    assert still.exit_code == 2 and "would still be due 2025-12-29" in still.stderr
    ok(extend(uk, "--days", "7"))  # 1 January is a holiday too: Friday 2 January
    both = world.run("extend-dsar", uk, "--months", "1", "--days", "1", "--reason", "x", *OFFICER)
    assert both.exit_code == 2 and "give exactly one of --months or --days" in both.stderr

    with world.session() as s:
        rows = {r.reference: r for r in s.scalars(select(DsarRequest))}
        assert rows[us].extended_due_at.date() == date(2026, 2, 23)
        assert (rows[us].extension_days, rows[us].extension_months) == (45, 0)
        assert rows[uk].extended_due_at.date() == date(2026, 1, 2)
        assert rows[br].extended_due_at is None
        # The desk offers no further extension where the law allows none.
        assert not next_actions(rows[us]).can_extend and not next_actions(rows[br]).can_extend
        assert next_actions(rows[uk]).can_extend
        extended = s.scalars(
            select(AuditEvent.target_id).where(AuditEvent.action == "dsar.extended")
        ).all()
    assert extended == [us, us, uk]


def test_notices_cite_each_requests_own_law_and_how_to_complain_under_it(
    world: Deployment,
) -> None:
    world.write_policy(POLICY)
    refs = {country: log(world, s).reference for s, country in COUNTRIES.items() if country}
    policy = world.policy()
    with world.session() as s:
        requests = {
            c: s.scalars(select(DsarRequest).filter_by(reference=r)).one() for c, r in refs.items()
        }
        for request in requests.values():
            request.status, request.reviewed_reason = DsarStatus.REJECTED, "no such account"
        said = {
            country: {kind: render_notice(policy, r, kind).text for kind in ("acknowledgement",
                                                                             "refusal")}
            for country, r in requests.items()
        }  # fmt: skip
        for country, request in requests.items():
            request.kind = DsarKind.RESTRICTION
            said[country]["restriction_lift"] = render_notice(
                policy, request, "restriction_lift", reason="the dispute is settled"
            ).text
        s.rollback()
    # Every notice that tells the subject how to disagree says so once, whatever the law.
    for country, notices in said.items():
        for kind in ("refusal", "restriction_lift"):
            assert notices[kind].count("If you disagree") == 1, (country, kind)
    assert "at the latest (CCPA, Cal. Civ. Code § 1798.130)" in said["US"]["acknowledgement"]
    assert "California Privacy Protection Agency" in said["US"]["refusal"]
    assert "at the latest (GDPR Art. 12(3))" in said["DE"]["acknowledgement"]
    assert "supervisory authority" in said["DE"]["refusal"] and "Art. 77" in said["DE"]["refusal"]
    # A law declared without wording of its own is cited neutrally, never as another law.
    for country in ("US", "GB", "BR"):
        assert "GDPR" not in said[country]["acknowledgement"] + said[country]["refusal"]
    assert "(the law that applies to your request)" in said["GB"]["acknowledgement"]
    assert "where you live" in said["BR"]["refusal"]


def test_alerts_overdue_counts_and_days_left_follow_each_requests_jurisdiction(
    world: Deployment,
) -> None:
    world.write_policy(POLICY)
    refs = {country: log(world, s).reference for s, country in COUNTRIES.items() if country}
    with world.session() as s:
        # 5 December: only the LGPD request is due within a week.
        soon = dsar_deadlines(s, date(2025, 12, 5), 7)
        assert [(i.reference, i.days_left) for i in soon] == [(refs["BR"], 5)]
        # 27 December: the LGPD and GDPR requests are late; the UK one is due on Monday 29th.
        late = dsar_deadlines(s, date(2025, 12, 27), 7)
        assert [(i.reference, i.days_left) for i in late] == [
            (refs["BR"], -17), (refs["DE"], -2), (refs["GB"], 2),
        ]  # fmt: skip
        now = datetime(2025, 12, 27, 12, 0, tzinfo=UTC)
        counters = dsar_counters(s, now=now)
        assert (counters.open, counters.overdue, counters.due_this_week) == (4, 2, 1)
        assert list(dsar_overview(s, now=now).overdue["reference"]) == [refs["BR"], refs["DE"]]
        detail = desk.request_detail(s, world.policy(), refs["US"], roles=(), now=now)
    assert (detail.jurisdiction, detail.days_left, detail.overdue) == ("ccpa", 13, False)


def test_progress_splits_volume_on_time_rate_and_median_days_per_kind_and_jurisdiction(
    deployment: Deployment,
) -> None:
    ccpa = parse_jurisdiction("ccpa", {"deadline_days": 45})
    lgpd = parse_jurisdiction("lgpd", {"deadline_days": 15})
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    done = DsarStatus.COMPLETED
    with deployment.session() as s:
        for subject, kind, law, status, days in [
            ("1", DsarKind.ACCESS, GDPR, done, 10),  # on time
            ("2", DsarKind.ACCESS, ccpa, done, 50),  # late: due in 45
            ("3", DsarKind.ERASURE, ccpa, done, 20),  # on time
            ("4", DsarKind.ERASURE, lgpd, DsarStatus.APPROVED, None),  # open, overdue by now
            # The rights beyond access and erasure count the same way, each as its own kind.
            ("5", DsarKind.OBJECTION, GDPR, done, 2),
            ("6", DsarKind.RESTRICTION, GDPR, DsarStatus.PROCESSING, None),  # open, overdue
            ("7", DsarKind.RECTIFICATION, ccpa, done, 46),  # late: due in 45
            ("8", DsarKind.PORTABILITY, GDPR, done, 12),
        ]:
            finished = start + timedelta(days=days) if days is not None else None
            make.dsar_request(s, kind=kind, status=status, subject_id=subject,
                              requested_at=start, law=law, completed_at=finished)  # fmt: skip
        s.commit()
        now = start + timedelta(days=60)
        per_law = dsar_split(s, "jurisdiction", now=now)
        per_kind = dsar_split(s, "kind", now=now)
    columns = ["jurisdiction", "received", "open", "overdue", "completed", "on_time"]
    assert per_law[columns].values.tolist() == [
        ["ccpa", 3, 0, 0, 3, 1],
        ["gdpr", 4, 1, 1, 3, 3],
        ["lgpd", 1, 1, 1, 0, 0],
    ]
    # Nothing completed under the LGPD: no rate and no median, rather than a made-up zero.
    assert per_law["on_time_rate"].fillna(-1).round(3).tolist() == [0.333, 1.0, -1]
    assert per_law["median_days"].fillna(-1).tolist() == [46.0, 10.0, -1]
    assert per_kind.set_index("kind")[["received", "completed", "on_time", "overdue"]].to_dict(
        "index"
    ) == {
        "access": {"received": 2, "completed": 2, "on_time": 1, "overdue": 0},
        "erasure": {"received": 2, "completed": 1, "on_time": 1, "overdue": 1},
        "objection": {"received": 1, "completed": 1, "on_time": 1, "overdue": 0},
        "restriction": {"received": 1, "completed": 0, "on_time": 0, "overdue": 1},
        "rectification": {"received": 1, "completed": 1, "on_time": 0, "overdue": 0},
        "portability": {"received": 1, "completed": 1, "on_time": 1, "overdue": 0},
    }
    medians = per_kind.set_index("kind")["median_days"].fillna(-1).to_dict()
    assert medians == {"access": 30.0, "erasure": 20.0, "objection": 2.0, "restriction": -1,
                       "rectification": 46.0, "portability": 12.0}  # fmt: skip


# ---------------------------------------------------------------- the policy file


def _policy_with(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = tomllib.loads(POLICY)
    change(data)
    return data


def _law(name: str, **values: Any) -> Callable[[dict[str, Any]], object]:
    return lambda d: d["jurisdictions"].__setitem__(name, values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_law("ccpa", deadline_days=45, deadline_months=1),
         "jurisdictions.ccpa.deadline_months: give deadline_days or deadline_months, not both"),
        (_law("ccpa", deadline_days=45, extension_days=45, extension_months=1),
         "jurisdictions.ccpa.extension_months: give extension_days or extension_months, not both"),
        (_law("ccpa", deadline_days=-1),
         "jurisdictions.ccpa.deadline_days: must be 0 or more, got -1"),
        (_law("ccpa", deadline_days=45, extension_days=-45),
         "jurisdictions.ccpa.extension_days: must be 0 or more, got -45"),
        (_law("ccpa", deadline_days=0),
         "jurisdictions.ccpa.deadline_days: expected at least 1, got 0"),
        (_law("ccpa", extension_days=45),
         "jurisdictions.ccpa: give deadline_days or deadline_months"),
        (_law("uk_gdpr", deadline_months=1, working_days="XX"),
         "jurisdictions.uk_gdpr.working_days: 'XX' is not a country the holidays package knows"),
        (_law("uk_gdpr", deadline_months=1, working_days="GB-XYZ"),
         "jurisdictions.uk_gdpr.working_days: 'GB-XYZ' is not a country"),
        (_law("ccpa", deadline_days="45"),
         "jurisdictions.ccpa.deadline_days: expected int, got '45'"),
        (_law("ccpa", deadline_days=45, window=3), "jurisdictions.ccpa.window: unknown key"),
        (_law("pdpa", deadline_days=30, countries=["BR"]),
         "jurisdictions.pdpa.countries: 'BR' is already listed by jurisdictions.lgpd"),
        (_law("bad name", deadline_days=30), 'jurisdictions."bad name": a name is 1 to 64'),
        (_law("ccpa", deadline_days=45, citation="  "), "jurisdictions.ccpa.citation: is empty"),
        (_law("ccpa", deadline_days=45, complaint="Call $phone"),
         "jurisdictions.ccpa.complaint: may not contain '$'"),
        (_law("ccpa", deadline_days=45, citation="CCPA\x1b[31m"),
         "jurisdictions.ccpa.citation: holds a control character"),
        (_law("ccpa", deadline_days=45, complaint="x" * 1001),
         "jurisdictions.ccpa.complaint: at most 1000 characters, got 1001"),
        (lambda d: d["dsar"].update(default_jurisdiction="hipaa"),
         "dsar.default_jurisdiction: 'hipaa' is not a declared jurisdiction (known: ccpa, gdpr, "
         "lgpd, uk_gdpr)"),
    ],
)  # fmt: skip
def test_a_malformed_jurisdiction_is_refused_at_load_in_one_line_naming_its_key(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(_policy_with(change), env={})
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_declared_gdpr_replaces_the_built_in_one_and_working_days_may_name_a_region() -> None:
    policy = parse_policy(
        _policy_with(_law("gdpr", deadline_days=30, working_days="gb-eng")), env={}
    )
    assert policy.jurisdiction("gdpr").deadline_days == 30
    assert policy.jurisdiction("gdpr").working_days == "GB-ENG"
    assert policy.jurisdiction("ccpa").countries == ("US",)
    assert parse_policy(tomllib.loads(DEMO_POLICY), env={}).jurisdictions == {"gdpr": GDPR}
