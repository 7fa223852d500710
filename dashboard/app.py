"""Privacy Desk dashboard (placeholder until the review pages land)."""

import streamlit as st

st.set_page_config(page_title="Privacy Desk", page_icon="🛡️")
st.title("Privacy Desk")
st.write("Deletion batches, DSAR requests and progress will appear here.")
