"""Outbox (demo mode only): the emails and Slack alerts the demo wrote instead of sending them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from compliance.dsar.mailer import read_outbox
from compliance.errors import ComplianceError
from compliance.roles import COMPLIANCE_OFFICER, MANAGER, SUPPORT
from dashboard import context, widgets

widgets.require_role(COMPLIANCE_OFFICER, SUPPORT, MANAGER)
policy = context.policy()
if not policy.dashboard.demo_mode:  # navigation registers this page in demo mode only
    st.stop()
st.title("Outbox")
st.caption(
    "Demo mode: emails to data subjects, and Slack alerts while Slack is not configured, are "
    "written to the `[smtp] outbox` folder instead of being sent. Newest first."
)

outbox = policy.smtp.outbox
try:
    messages = read_outbox(outbox)
except ComplianceError as exc:
    widgets.show_error(exc)
    st.stop()
if outbox is None:
    st.info("No `[smtp] outbox` is set: mail goes to the SMTP server, and nothing is kept here.")
    st.stop()
if not messages:
    st.info("Nothing was written yet. Send a download link from a DSAR request, or run a job.")
    st.stop()

widgets.table(
    pd.DataFrame(
        [{"written_at": m.written_at, "to": m.to, "subject": m.subject} for m in messages]
    ),
    headers={"written_at": "When", "to": "To", "subject": "Subject"},
)
chosen = st.selectbox(
    "Message",
    range(len(messages)),
    format_func=lambda i: (
        f"{messages[i].written_at:%Y-%m-%d %H:%M:%S} · {messages[i].to} · {messages[i].subject}"
    ),
    key="outbox_message",
)
message = messages[chosen or 0]
widgets.show_text("To", message.to)
widgets.show_text("Subject", message.subject)
widgets.show_text("Message (plain text)", message.text)
if message.links:
    st.caption("Links in this message (copy one with the button on its right)")
    for link in message.links:
        st.code(link, language=None, wrap_lines=True)
