"""A real S3-protocol server on loopback (moto in server mode), one per test module.

Jobs, pages and the library reach it over HTTP with boto3, as they would reach AWS S3 or
MinIO; the test's own client looks into the bucket to check what landed there.
"""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "eu-central-1"
#: What boto3 finds in a pod's environment; nothing of a developer's ~/.aws is read.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "privacy-desk-test",
    "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        """The test's own client (made once: making one costs a tenth of a second)."""
        if "_client" in self.__dict__:
            return self.__dict__["_client"]
        import boto3

        self.__dict__["_client"] = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        return self.__dict__["_client"]

    def new_bucket(self, *, versioned: bool = False) -> str:
        """A bucket of this test's own (names are random: tests share the server)."""
        name = f"pd-{uuid.uuid4().hex[:16]}"
        client = self.client()
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def versions(self, bucket: str, prefix: str = "") -> list[str]:
        """Every version and delete marker left under ``prefix``: what a deletion must clear."""
        listed = self.client().list_object_versions(Bucket=bucket, Prefix=prefix)
        kept = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
        return sorted(f"{item['Key']}@{item['VersionId']}" for item in kept)

    @contextlib.contextmanager
    def checking_credentials(self) -> Iterator[None]:
        """While inside, the server refuses keys it never issued (InvalidAccessKeyId)."""
        self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, count: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


def exports_section(server: S3Server, bucket: str, **more: object) -> str:
    """The policy's ``[exports]`` for ``bucket`` on ``server`` (appended to a policy)."""
    lines = {
        "storage": "s3",
        "bucket": bucket,
        "prefix": "desk/",
        "endpoint_url": server.endpoint,
        "region": REGION,
        "sse": "AES256",
        **more,
    }
    body = "\n".join(
        f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"'
        for key, value in lines.items()
    )
    return f"\n[exports]\n{body}\n"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The credentials in this process's environment, where boto3 looks (and the jobs the
    test starts inherit them)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return dict(CREDENTIALS)
