"""Secure delivery: a one-time link plus a code, expiring, attempt-limited, stored hashed."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from compliance.dsar.decisions import review_dsar
from compliance.dsar.delivery import (
    DeliveryRefused,
    NewDelivery,
    check_token,
    create_delivery,
    deliver_export,
    redeem_delivery,
)
from compliance.dsar.mailer import MailError
from compliance.dsar.processing import process_dsar_requests
from compliance.dsar.requests import submit_dsar
from compliance.errors import Conflict
from compliance.store.models import DsarDelivery, utcnow
from tests.conftest import DEMO_POLICY, DPO, SUPPORT_STAFF, Deployment, with_mail_server

URL = "https://privacy.example.com/download"


@dataclass
class Ready:
    deployment: Deployment
    reference: str
    export: Path
    delivery: NewDelivery
    created_at: datetime

    def redeem(self, otp: str, after: timedelta = timedelta(minutes=1), token: str | None = None):
        with self.deployment.session() as s:
            return redeem_delivery(
                s, self.delivery.token if token is None else token, otp,
                policy=self.deployment.policy(), now=self.created_at + after,
            )  # fmt: skip

    def wrong_otp(self) -> str:
        return "000000" if self.delivery.otp != "000000" else "111111"


def finished_access_request(d: Deployment, subject_id: str = "21") -> tuple[str, Path]:
    policy = d.policy()
    with d.session() as s:
        request = submit_dsar(
            s, policy, d.app_engine, kind="access", subject_id=subject_id,
            requested_by=SUPPORT_STAFF, execute=True,
        )  # fmt: skip
        review_dsar(s, request.reference, "approve", reviewer=DPO, four_eyes=True, execute=True)
        process_dsar_requests(s, d.datamap(), actor="worker", execute=True)
        s.refresh(request)
        return request.reference, Path(request.export_path)


@pytest.fixture
def ready(demo: Deployment) -> Ready:
    reference, export = finished_access_request(demo)
    created_at = utcnow()
    with demo.session() as s:
        delivery = create_delivery(s, reference, actor=SUPPORT_STAFF, download_url=URL,
                                   policy=demo.policy(), now=created_at)  # fmt: skip
        s.commit()
    return Ready(demo, reference, export, delivery, created_at)


def test_the_right_code_downloads_the_export_once(ready: Ready) -> None:
    download = ready.redeem(ready.delivery.otp)
    assert download.content == ready.export.read_bytes()
    assert download.reference == ready.reference
    with pytest.raises(DeliveryRefused, match="already used"):
        ready.redeem(ready.delivery.otp)


def test_only_hashes_of_the_token_and_code_are_stored(ready: Ready) -> None:
    with ready.deployment.session() as s:
        row = s.scalars(select(DsarDelivery)).one()
    stored = " ".join([row.token_hash, row.otp_hash, row.otp_salt])
    assert ready.delivery.token not in stored and ready.delivery.otp not in stored
    algorithm, iterations, _ = row.otp_hash.split("$")
    assert algorithm == "pbkdf2_sha256" and int(iterations) >= 100_000
    assert len(ready.delivery.token) >= 43  # 32 random bytes, URL-safe base64
    assert ready.delivery.link == f"{URL}?token={ready.delivery.token}"


def test_a_forged_or_altered_token_is_refused(ready: Ready) -> None:
    token = ready.delivery.token
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for forged in (secrets.token_urlsafe(32), altered, "", "x" * 500):
        with pytest.raises(DeliveryRefused, match="not valid"):
            ready.redeem(ready.delivery.otp, token=forged)
    # Forgeries do not count against the real link.
    assert ready.redeem(ready.delivery.otp).content == ready.export.read_bytes()


def test_the_code_expires_after_15_minutes(ready: Ready) -> None:
    with pytest.raises(DeliveryRefused, match="code has expired"):
        ready.redeem(ready.delivery.otp, after=timedelta(minutes=15, seconds=1))
    assert ready.redeem(ready.delivery.otp, after=timedelta(minutes=14)).content


def test_the_link_expires_after_24_hours(ready: Ready) -> None:
    with ready.deployment.session() as s:
        info = check_token(s, ready.delivery.token, now=ready.created_at + timedelta(hours=23))
        assert info.reference == ready.reference and info.attempts_left == 5
        with pytest.raises(DeliveryRefused, match="expired"):
            check_token(s, ready.delivery.token, now=ready.created_at + timedelta(hours=24))
    with pytest.raises(DeliveryRefused, match="link has expired"):
        ready.redeem(ready.delivery.otp, after=timedelta(hours=24, seconds=1))


def test_five_wrong_codes_lock_the_delivery_even_for_the_right_code(ready: Ready) -> None:
    for left in (4, 3, 2, 1):
        with pytest.raises(DeliveryRefused, match=f"wrong code; {left} attempt"):
            ready.redeem(ready.wrong_otp())
    with pytest.raises(DeliveryRefused, match="now locked"):
        ready.redeem(ready.wrong_otp())
    with pytest.raises(DeliveryRefused, match="locked"):
        ready.redeem(ready.delivery.otp)
    with ready.deployment.session() as s:
        row = s.scalars(select(DsarDelivery)).one()
        assert row.attempts == 5 and row.locked_at is not None and row.downloaded_at is None


def test_guesses_made_at_once_count_one_after_the_other_and_stop_at_the_lock(
    ready: Ready,
) -> None:
    """Eight tabs guessing at the same moment: five guesses count, the rest find the link
    locked, on SQLite as on PostgreSQL."""
    start = threading.Barrier(8)

    def guess(_: int) -> str:
        start.wait()
        try:
            ready.redeem(ready.wrong_otp())
        except DeliveryRefused as refused:
            return str(refused)
        return "downloaded"

    with ThreadPoolExecutor(8) as pool:
        said = sorted(pool.map(guess, range(8)))
    assert said == sorted(
        [f"wrong code; {left} attempt(s) left" for left in (4, 3, 2, 1)]
        + ["too many wrong codes: this download link is now locked"]
        + ["this download link is locked after too many wrong codes"] * 3
    )
    with ready.deployment.session() as s:
        assert s.scalars(select(DsarDelivery.attempts)).one() == 5
    with pytest.raises(DeliveryRefused, match="locked"):
        ready.redeem(ready.delivery.otp)


def test_a_link_for_an_unfinished_request_is_refused(demo: Deployment) -> None:
    with demo.session() as s:
        request = submit_dsar(s, demo.policy(), demo.app_engine, kind="access", subject_id="30",
                              requested_by=SUPPORT_STAFF, execute=True)  # fmt: skip
        with pytest.raises(Conflict, match="no finished export"):
            create_delivery(
                s, request.reference, actor=SUPPORT_STAFF, download_url=URL, policy=demo.policy()
            )


def test_an_unreachable_mail_server_stores_no_delivery(demo: Deployment) -> None:
    from tests.smtp_server import free_port

    reference, _ = finished_access_request(demo)
    demo.write_policy(with_mail_server(DEMO_POLICY, free_port()))
    with demo.session() as s:
        with pytest.raises(MailError, match="unreachable"):
            deliver_export(
                s, demo.policy(), reference, actor=SUPPORT_STAFF, download_url=URL, execute=True
            )
        assert s.scalar(select(func.count()).select_from(DsarDelivery)) == 0
