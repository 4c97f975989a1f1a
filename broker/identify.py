"""``POST /band/identify.json``: a backend says who a visitor is, with a project key.

The body is ``{"uid", "user_id", "traits"}`` (identify: this browser uid is that user)
or ``{"previous_id", "user_id"}`` (alias: two identifiers, one person). The key comes as
``Authorization: Bearer <key>``; ``EDGE_PROJECT_KEYS`` (``key:projectId,...``) says which
keys exist and which project each speaks for. The request becomes an event of service
``identity`` and goes through the pipeline like any hit (:mod:`broker.pipeline`); the
store applies it in stream order (docs/identity.md). Hits of service ``identity`` from
anywhere else are refused (:func:`broker.hit.make_hit`): only a key holder joins persons.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from band import wire

from .bodies import Held
from .config import EdgeConfig
from .hit import BadHit, ClientIP, Hit, Parts, make_hit, td_of, valid_uid
from .request import parse_path, read_body

PATH = "/band/identify.json"


def project_of(config: EdgeConfig, header: str) -> int:
    """The project the request's key speaks for.

    Raises:
        BadHit: 401 without a key, 403 with one that is not known.
    """
    if not config.project_keys:
        raise BadHit(403, "this edge takes no project keys: set EDGE_PROJECT_KEYS=key:projectId,... to allow /band/identify.json")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise BadHit(401, "a project key is needed: send Authorization: Bearer <key> (one of EDGE_PROJECT_KEYS)")
    found = None
    for known, project in config.project_keys.items():  # every key compared, in constant time each
        if hmac.compare_digest(known.encode(), key.strip().encode()):
            found = project
    if found is None:
        raise BadHit(403, "the project key is not one of EDGE_PROJECT_KEYS")
    return found


def change_of(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(action, uid)`` of the body, checked; the store reads the same fields.

    Raises:
        BadHit: 400 naming what is missing or wrong.
    """
    try:
        if "previous_id" in body:
            wire.identifier(body.get("previous_id"), "auto")
            wire.identifier(body.get("user_id"), "auto")
            return "alias", None
        wire.user_identifier(body.get("user_id"))
        problem = wire.traits_problem(body.get("traits"))
        if problem:
            raise BadHit(400, problem)
    except wire.IdentifierError as exc:
        raise BadHit(400, f"user_id or previous_id: {exc}") from None
    uid = valid_uid(body.get("uid"))
    if uid is None:
        raise BadHit(400, f"uid {str(body.get('uid'))[:40]!r} is not a visitor uid (the uid cookie: 10 to 22 digits); "
                          "for two ids of one person send {previous_id, user_id}")
    return "identify", uid


async def read_identify(request: web.Request, config: EdgeConfig, client_ip: ClientIP, held: Held) -> Hit:
    """The request as an identity hit (native answer: the typed response as JSON).

    Raises:
        BadHit: 401/403 for the key, 400 for the body, as :func:`broker.request.read_body`.
    """
    if request.method != "POST":
        raise BadHit(405, f"{PATH} takes POST with a JSON body")
    project = project_of(config, request.headers.get("Authorization", ""))
    body = await read_body(request, parse_path(request.raw_path), config, held)
    action, uid = change_of(body)
    fields: dict[str, Any] = {k: body[k] for k in ("user_id", "traits", "previous_id") if k in body}
    parts = Parts(channel="http", service=wire.IDENTITY_SERVICE, name=action, query={}, payload=fields, cookie=None,
                  td=td_of(request.headers, request.remote, client_ip), project=project, own_uid=uid or "0",
                  native=True, headers=request.headers, method=request.method, path=request.path, trusted=True)
    return make_hit(parts, config.aliases)


__all__ = ["PATH", "change_of", "project_of", "read_identify"]
