"""Support's "Export now": the export is built in a background thread with visible progress.

The claim happens at once, in the click's own run (so a refusal shows right there); the
slow part, reading every mapped table, runs in a thread of the dashboard's process and
reports table by table. The registry is shared by every session of the process, so a
second person opening the same request sees the same progress.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import streamlit as st

from compliance.dsar.desk import run_export, start_export
from compliance.errors import ComplianceError
from compliance.logs import log_event
from compliance.policy.model import Policy
from compliance.roles import Identity
from dashboard import context, widgets


@dataclass
class ExportJob:
    reference: str
    done: int = 0
    total: int = 0
    table: str = ""
    finished: bool = False
    error: str | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@st.cache_resource
def _registry() -> dict[str, ExportJob]:
    return {}


def job_for(reference: str) -> ExportJob | None:
    return _registry().get(reference)


def forget(reference: str) -> None:
    _registry().pop(reference, None)


def start(policy: Policy, reference: str, actor: Identity) -> ExportJob:
    """Claim the request now (a refusal raises here) and build its export in the background."""
    with context.session(policy) as s:
        start_export(s, policy, reference, actor=actor, execute=True)
    datamap = context.datamap(policy)
    job = ExportJob(reference)
    _registry()[reference] = job

    def progress(done: int, total: int, table: str) -> None:
        job.done, job.total, job.table = done, total, table

    def work() -> None:
        try:
            with context.session(policy) as s:
                run_export(s, datamap, reference, actor=actor, progress=progress)
        except ComplianceError as exc:
            job.error = widgets.error_text(exc)
        except Exception as exc:  # a bug: logged with its traceback, shown as one line
            logging.getLogger("compliance").error("dsar.export_crashed", exc_info=True)
            log_event("dsar.export_crashed", reference=reference, error=type(exc).__name__)
            job.error = f"unexpected {type(exc).__name__}; the traceback is in the server log"
        finally:
            job.finished = True

    threading.Thread(target=work, name=f"export-{reference}", daemon=True).start()
    return job
