"""The HTTP read API and the catalog explorer (``arco serve``).

An ASGI app (Starlette, served by uvicorn) over :mod:`arco.read`: read-only SQL, catalog browse, lineage,
search, runs and signed URLs, each answering only inside the scope (tenant and workspace) of the caller's bearer
JWT. It keeps no state between requests, so any number of processes can serve one catalog behind a load balancer.

The modules:

* :mod:`arco.api.problems`: errors as RFC 9457 problem JSON;
* :mod:`arco.api.auth`: bearer JWTs (HS256 with a secret, RS256/ES256 with a JWKS) and development tokens;
* :mod:`arco.api.files`: Arco's own signed URLs for a local catalog, served with range requests;
* :mod:`arco.api.endpoints`: the ``/api/v1/`` endpoints and the OpenAPI schema written from the same table;
* :mod:`arco.api.explorer`: the explorer page's routes;
* :mod:`arco.api.app`: :func:`~arco.api.app.create_app`, which puts them together with CORS, request size limits
  and access logs.
"""
