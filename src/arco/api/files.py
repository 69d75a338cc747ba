"""Arco's own signed URLs for a catalog on a local folder, and the endpoint that serves them.

A local store cannot sign URLs itself (there is no server to check a signature). ``arco serve`` signs its files:
``{base}/files/{key}?exp={unix}&scope={tenant}/{workspace}&sig={hex}``, where ``sig`` is the HMAC-SHA256 of the
key, the expiry and the scope under the server's file key. The URL reads one file, of one scope, until it
expires; a changed byte of key, expiry, scope or signature is refused with 403, like an expired URL. Files are
served with HTTP range requests (DuckDB-WASM reads Parquet footers and row groups by range) and CORS (any origin:
the URL itself is the credential, as with a bucket's signed URLs).

Every replica must share the file key to verify the others' URLs: it is derived from the JWT secret, or set with
``ARCO_API_FILES_SECRET``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from arco.api.problems import problem
from arco.catalog.storage import ObjectStore
from arco.core.errors import ArcoError
from arco.core.scope import Scope

__all__ = ["FILE_CORS_HEADERS", "FileSigner", "file_routes"]

#: CORS headers of served files: any origin may read a file whose URL it holds; the range headers are exposed.
FILE_CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges, ETag",
}


@dataclass(frozen=True, slots=True)
class FileSigner:
    """Signs and verifies local file URLs.

    Attributes:
        key: The HMAC key (shared by every replica).
    """

    key: bytes = field(repr=False)

    @classmethod
    def derived(cls, secret: str) -> FileSigner:
        """A signer whose key is derived from a secret (the JWT secret or ``ARCO_API_FILES_SECRET``)."""
        return cls(hmac.new(secret.encode(), b"arco-api-files/v1", hashlib.sha256).digest())

    def signature(self, key: str, expires: int, scope: str) -> str:
        """The hex HMAC-SHA256 of one URL's key, expiry and scope."""
        message = f"{key}\n{expires}\n{scope}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(self, base_url: str, key: str, scope: Scope, expires_in: datetime.timedelta) -> tuple[str, int]:
        """A signed URL of one store key, and its expiry (unix seconds)."""
        expires = int(time.time() + expires_in.total_seconds())
        sig = self.signature(key, expires, str(scope))
        url = f"{base_url.rstrip('/')}/files/{quote(key)}?exp={expires}&scope={quote(str(scope))}&sig={sig}"
        return url, expires

    def verify(self, key: str, expires: str, scope: str, sig: str, *, now: float | None = None) -> str | None:
        """Why the URL is refused, or ``None`` when it is good."""
        if not expires.isdigit() or not sig:
            return "the URL is not a signed Arco file URL (exp, scope and sig are needed)"
        if not hmac.compare_digest(self.signature(key, int(expires), scope), sig):
            return "the URL's signature does not match: it was altered, or signed by another server; sign it again"
        if int(expires) < (time.time() if now is None else now):
            return "the signed URL expired; sign the file again (POST /api/v1/sign)"
        try:
            owner = Scope.parse(scope)
        except ArcoError:
            return "the URL's scope is malformed"
        if not key.startswith(f"{owner.prefix}/"):
            return "the URL's file is not a file of its scope"
        return None


def file_routes(store: ObjectStore, signer: FileSigner) -> list[Route]:
    """The route that serves signed local files: ``GET/HEAD/OPTIONS /files/{key:path}``."""

    async def serve(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    **FILE_CORS_HEADERS,
                    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Match",
                    "Access-Control-Max-Age": "600",
                },
            )
        key = request.path_params["key"]
        params = request.query_params
        why = signer.verify(key, params.get("exp", ""), params.get("scope", ""), params.get("sig", ""))
        if why is not None:
            response = problem(403, why, kind="bad_signed_url")
            response.headers.update(FILE_CORS_HEADERS)
            return response
        path = store.local_path(key)
        if path is None or not path.is_file():
            response = problem(404, "the signed file no longer exists", kind="not_found")
            response.headers.update(FILE_CORS_HEADERS)
            return response
        return FileResponse(
            path,
            media_type="application/vnd.apache.parquet",
            headers={**FILE_CORS_HEADERS, "Cache-Control": "private, max-age=300"},
        )

    return [Route("/files/{key:path}", serve, methods=["GET", "HEAD", "OPTIONS"], name="files")]
