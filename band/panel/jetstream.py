"""JetStream as the panel sees it: the events stream, its consumers' lag, and dead letters.

Dead letters are published by durable listeners on ``band.dlq.<service>``; the
``BAND_DLQ`` stream (``wire.DLQ_STREAM``) keeps them so they can be listed, inspected,
replayed into the events stream or dropped. The panel creates that stream when it is
missing (it runs with the operator's credentials; services need no JetStream rights
for it: they only publish on their own ``band.dlq.<service>``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from .. import wire
from ..runtime import ensure_dlq_stream

LIST_LIMIT = 200


async def state(js: JetStreamContext) -> dict[str, Any]:
    """Stream messages and bytes, each durable consumer's lag, and the dead-letter count."""
    out: dict[str, Any] = {"stream": None, "consumers": [], "dead_letters": 0}
    try:
        info = await js.stream_info(wire.STREAM)
    except NotFoundError:
        out["message"] = f"no {wire.STREAM} stream yet: it is created when the edge or a durable listener starts"
    else:
        s = info.state
        out["stream"] = {
            "name": wire.STREAM, "messages": s.messages, "bytes": s.bytes, "first_seq": s.first_seq, "last_seq": s.last_seq,
            "consumers": s.consumer_count,
        }
        for consumer in await js.consumers_info(wire.STREAM):
            config = consumer.config
            out["consumers"].append({
                "name": consumer.name,
                "durable": bool(config.durable_name),
                "filter": config.filter_subject or ", ".join(getattr(config, "filter_subjects", None) or []) or wire.EVENTS_SUBJECTS,
                "lag": consumer.num_pending or 0,
                "ack_pending": consumer.num_ack_pending or 0,
                "redelivered": consumer.num_redelivered or 0,
            })
        out["consumers"].sort(key=lambda c: (not c["durable"], c["name"]))
    try:
        dlq = await js.stream_info(wire.DLQ_STREAM)
        out["dead_letters"] = dlq.state.messages
    except NotFoundError:
        pass
    return out


def _letter(msg: RawStreamMsg, full: bool) -> dict[str, Any]:
    headers = dict(msg.headers or {})
    raw = msg.data or b""
    letter: dict[str, Any] = {
        "seq": msg.seq,
        "subject": msg.subject,
        "time": msg.time.isoformat() if msg.time else None,
        "service": headers.get(wire.SERVICE_HEADER) or (msg.subject or "").rpartition(".")[2],
        "key": headers.get(wire.DLQ_SUBJECT_HEADER, ""),
        "method": headers.get(wire.DLQ_METHOD_HEADER, ""),
        "error": headers.get(wire.ERROR_HEADER, ""),
        "size": len(raw),
    }
    if full:
        letter["headers"] = headers
        try:
            letter["event"] = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            letter["event"] = None
            letter["raw_base64"] = base64.b64encode(raw).decode()
    return letter


async def dead_letters(js: JetStreamContext, limit: int = LIST_LIMIT) -> dict[str, Any]:
    """The oldest ``limit`` dead letters (without bodies) and how many there are."""
    await ensure_dlq_stream(js)
    info = await js.stream_info(wire.DLQ_STREAM)
    letters: list[dict[str, Any]] = []
    seq = info.state.first_seq
    while len(letters) < limit and info.state.messages and seq <= info.state.last_seq:
        try:
            msg = await js.get_msg(wire.DLQ_STREAM, seq=seq, subject=f"{wire.DLQ_PREFIX}.>", next=True)
        except NotFoundError:
            break
        letters.append(_letter(msg, False))
        seq = (msg.seq or seq) + 1
    return {"total": info.state.messages, "letters": letters}


async def dead_letter(js: JetStreamContext, seq: int) -> dict[str, Any]:
    """One dead letter whole: headers, the event as JSON (or base64 when it is not JSON)."""
    return _letter(await js.get_msg(wire.DLQ_STREAM, seq=seq), True)


async def replay(js: JetStreamContext, seq: int) -> dict[str, Any]:
    """Publish the dead letter's event again on its key (every listener of the key gets it
    again), then drop it from the dead letters. Replaying the same letter twice within the
    stream's de-duplication window stores it once."""
    msg = await js.get_msg(wire.DLQ_STREAM, seq=seq)
    headers = msg.headers or {}
    key = headers.get(wire.DLQ_SUBJECT_HEADER, "")
    if not key.startswith(wire.EVENTS_ROOT + "."):
        raise ValueError(f"dead letter {seq} names no event key to replay into (header {wire.DLQ_SUBJECT_HEADER} is {key!r})")
    ack = await js.publish(key, msg.data or b"", headers={wire.MSG_ID_HEADER: f"replay-{seq}-{msg.time.timestamp() if msg.time else 0}"})
    await js.delete_msg(wire.DLQ_STREAM, seq)
    return {"replayed": seq, "key": key, "stream_seq": ack.seq, "duplicate": bool(ack.duplicate)}


async def drop(js: JetStreamContext, seq: int) -> dict[str, Any]:
    await js.delete_msg(wire.DLQ_STREAM, seq)
    return {"dropped": seq}


__all__ = ["dead_letter", "dead_letters", "drop", "replay", "state"]
