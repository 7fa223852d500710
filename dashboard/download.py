"""The data subject's download page: a separate Streamlit entry point, outside the dashboard.

Run it apart from the staff dashboard (``streamlit run dashboard/download.py --server.port
8503``; the intake API has 8502): it needs no sign-in and shows nothing but a code field,
and only for a link that is still valid; the export appears only after the right code, once.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine

from compliance.dsar.delivery import DeliveryRefused, check_token, redeem_delivery
from compliance.errors import ComplianceError
from compliance.policy.loader import load_policy
from compliance.store.engines import make_engine, session_factory

DOWNLOAD_KEY = "dsar_download"


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
        sessions = session_factory(engine(load_policy().database_url))
    except ComplianceError:
        st.error("The download service is not available right now. Please try again later.")
        return
    saved = st.session_state.get(DOWNLOAD_KEY)
    if saved is None:
        with sessions() as session:
            try:
                check_token(session, token)
            except DeliveryRefused as refused:
                st.error(f"Sorry: {refused}. Ask us for a new link if you still need your data.")
                return
        with st.form("otp"):
            otp = st.text_input("The 6-digit code from our second email", max_chars=6)
            unlocked = st.form_submit_button("Unlock")
        if not unlocked:
            return
        with sessions() as session:
            try:
                download = redeem_delivery(session, token, otp)
            except DeliveryRefused as refused:
                st.error(f"Sorry: {refused}.")
                return
        saved = {"file_name": download.filename, "data": download.content}
        st.session_state[DOWNLOAD_KEY] = saved
    st.success("Your export is ready. This link now stops working: save the file.")
    st.download_button(
        "Download your data (ZIP)",
        data=saved["data"],
        file_name=saved["file_name"],
        mime="application/zip",
        on_click="ignore",
        type="primary",
    )
    st.caption("It holds data.json, one CSV per table, a README and a manifest of checksums.")


main()
