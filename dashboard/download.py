"""The data subject's download page: a separate Streamlit entry point, outside the dashboard.

Run it apart from the staff dashboard (``streamlit run dashboard/download.py --server.port
8503``; the intake API has 8502): it needs no sign-in and shows nothing but a code field,
and only for a link that is still valid; the export appears only after the right code, once.
It holds at most ``[exports] max_download_mb`` of an export; a larger one comes from the
bucket itself, by a link valid for 60 seconds. While the export store does not answer it
says so, and the link stays unused.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy import Engine

from compliance.dsar.delivery import DeliveryRefused, check_token, redeem_delivery
from compliance.errors import ComplianceError, Outage
from compliance.logs import log_event
from compliance.policy.loader import load_policy
from compliance.policy.model import Policy
from compliance.storage import StoreRefused
from compliance.store.engines import make_engine, session_factory

DOWNLOAD_KEY = "dsar_download"
UNAVAILABLE = "The download service is temporarily unavailable. Please try again later."


@st.cache_resource(max_entries=4, on_release=lambda engine: engine.dispose())
def engine(url: str) -> Engine:
    return make_engine(url)


def main() -> None:
    st.set_page_config(page_title="Your data", page_icon=":material/lock:")
    st.title("Download your data")
    token = st.query_params.get("token", "")
    if not token:
        st.info("Open the link from our email to download your data.")
        return
    try:
        policy = load_policy()
        sessions = session_factory(engine(policy.database_url))
    except ComplianceError:
        st.error(UNAVAILABLE)
        return
    saved = st.session_state.get(DOWNLOAD_KEY)
    if saved is None:
        saved = unlock(policy, sessions, token)
        if saved is None:
            return
        st.session_state[DOWNLOAD_KEY] = saved
    st.success("Your export is ready. This link now stops working: save the file.")
    if saved["data"] is None:
        st.link_button("Download your data (ZIP)", saved["url"], type="primary")
        st.caption("The download link works for 60 seconds: start it now.")
    else:
        st.download_button(
            "Download your data (ZIP)",
            data=saved["data"],
            file_name=saved["file_name"],
            mime="application/zip",
            on_click="ignore",
            type="primary",
        )
    st.caption("It holds data.json, one CSV per table, a README and a manifest of checksums.")


def unlock(policy: Policy, sessions: Any, token: str) -> dict[str, Any] | None:
    """The code form, and the export once the right code is in; None while there is none."""
    with sessions() as session:
        try:
            check_token(session, token)
        except DeliveryRefused as refused:
            st.error(f"Sorry: {refused}. Ask us for a new link if you still need your data.")
            return None
    with st.form("otp"):
        otp = st.text_input("The 6-digit code from our second email", max_chars=6)
        unlocked = st.form_submit_button("Unlock")
    if not unlocked:
        return None
    with sessions() as session:
        try:
            download = redeem_delivery(session, token, otp, policy=policy)
        except DeliveryRefused as refused:
            st.error(f"Sorry: {refused}.")
            return None
        except (Outage, StoreRefused) as exc:
            # The store is down or misconfigured: the subject's link stays unused.
            log_event("dsar.download_unavailable", error=type(exc).__name__)
            st.error(UNAVAILABLE)
            return None
    return {"file_name": download.filename, "data": download.content, "url": download.url}


main()
