"""A local S3 for the storage conformance suite.

moto's server (``moto[server]``, a dev dependency) runs in a thread on a free loopback port, with one
bucket. Import the ``moto_s3`` fixture into the test module that needs it. A missing moto fails the run (no
silent skip).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

_BUCKET = "arco-test"


@dataclass(frozen=True, slots=True)
class MotoS3:
    """A running moto S3 server with one bucket."""

    endpoint: str
    bucket: str
    storage_options: dict[str, Any] = field(hash=False)

    def uri(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>``."""
        prefix = prefix.strip("/")
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """Start moto's S3 server on 127.0.0.1 with bucket ``arco-test``; stop it after the session."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise RuntimeError(
            "moto[server] is not installed; install the dev extra: pip install -e '.[dev]'"
        ) from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # Explicit credentials and region: no client looks for AWS configuration or instance metadata.
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="arco-test",
            aws_secret_access_key="arco-test",
            region_name="us-east-1",
        ).create_bucket(Bucket=_BUCKET)
        yield MotoS3(
            endpoint=endpoint,
            bucket=_BUCKET,
            storage_options={
                "key": "arco-test",
                "secret": "arco-test",
                "endpoint_url": endpoint,
                "client_kwargs": {"region_name": "us-east-1"},
            },
        )
    finally:
        server.stop()
