# Privacy Desk: one image for every part. The jobs (the CronJobs in
# deploy/kubernetes-cronjobs.yaml), the dashboard, the intake API and the download page
# (deploy/kubernetes-desk.yaml) each run it with their own command.
#
# It is never built on the machines this repository is developed on (no container engine
# runs there): it is kept simple enough to be right by reading, and tests/test_deploy.py
# lints it with hadolint. Build and push it where a container engine runs:
#   docker build -t registry.example.com/privacy-desk:0.1.0 .
#
# It holds no secret and no policy: the policy comes from the ConfigMap mounted at
# /etc/privacy-desk, secrets from the environment (the Secret), and export files live in the
# bucket ([exports] storage = "s3"), so any pod may run anywhere.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/app/.venv/bin:$PATH \
    COMPLIANCE_CONFIG=/etc/privacy-desk/compliance.toml

WORKDIR /app

# The code the parts run; no tests, no demo data, nothing from var/ (.dockerignore).
COPY requirements.txt pyproject.toml ./
COPY .streamlit/config.toml .streamlit/config.toml
COPY compliance compliance
COPY jobs jobs
COPY dashboard dashboard
COPY api api

# The venv at /app/.venv with requirements.txt, the runtime (the test tools are in
# requirements-dev.txt): the pinned libraries and this checkout, installed editable as README's
# set-up does.
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir -r requirements.txt

# Never root: the code and the venv stay owned by root, so the process cannot change them.
RUN groupadd --system --gid 10001 privacydesk \
    && useradd --system --uid 10001 --gid privacydesk --create-home --shell /usr/sbin/nologin privacydesk
USER 10001:10001

# Dashboard (behind its sign-in proxy), intake API, download page.
EXPOSE 8501 8502 8503
CMD ["python", "-m", "jobs", "--help"]
