"""Dynamic call tracking: which visitor called, and who they are in the CRM.

/calltracking/number shows the visitor (uid) a phone number from the pool; the
number stays theirs until the pool wraps around. When a call comes in, telephony
calls /calltracking/who?number=<tracked number>&caller=<caller's phone>: we find
the visitor the number was shown to and ask the `crm` service for the caller.

Each show is also written to the store's `calltracking_shows` table (in the background,
best effort: without a store the numbers are still shown), so calls can be joined to the
visitor's session and its UTM marks in SQL (docs/tutorials/03-calltracking.md). A call
also joins the caller's number to the visitor's person in the store's identity graph as
`phone:<digits>` (docs/identity.md), in the background too.
"""

import time
from collections import OrderedDict
from typing import Any

from band import BandError, RPCTimeout, ServiceUnavailable, expose, identity, logger, response, rpc, scheduler, settings, store

# number -> uid, least recently assigned first. In-process for brevity: run one
# replica, or keep it in a KV bucket as examples/shortlink does.
shown: OrderedDict[str, str] = OrderedDict((str(n), '') for n in settings.pool)


@expose.handler()
async def number(uid: str, **params: Any) -> Any:
    """The visitor's number: the one they had, else the least recently shown one."""
    phone = next((n for n, owner in shown.items() if owner == uid), None) or next(iter(shown))
    shown[phone] = uid
    shown.move_to_end(phone)
    scheduler.spawn(record(phone, uid, int(time.time() * 1000)))
    return {'phone': phone}


async def record(phone: str, uid: str, ms: int) -> None:
    """One row per show, for the store's joins; a missing store only costs the row."""
    row = {'date': time.strftime('%Y-%m-%d', time.gmtime(ms / 1000)), 'dateTime': ms // 1000, 'timestamp': ms, 'phone': phone, 'uid': uid}
    try:
        await store.insert('calltracking_shows', [row])
    except BandError as exc:
        logger.debug('show not stored', error=str(exc))


@expose.handler(timeout=1000)
async def who(data: dict[str, Any], **params: Any) -> Any:
    tracked, caller = str(data.get('number', '')), str(data.get('caller', ''))
    if tracked not in shown or not caller:
        return response.error('number (one of the pool) and caller are required', 400)
    digits = ''.join(c for c in caller if c.isdigit())
    if shown[tracked] and digits:
        scheduler.spawn(link(shown[tracked], f'phone:{digits}'))
    try:
        customer = await rpc.request('crm', 'by_phone', phone=caller, timeout__=settings.crm_timeout)
        crm = 'ok'
    except (RPCTimeout, ServiceUnavailable) as exc:  # answer the call anyway, without the CRM
        logger.warning('crm did not answer', error=str(exc))
        customer, crm = None, 'unavailable'
    return {'visitor': shown[tracked] or None, 'customer': customer or None, 'crm': crm}


async def link(uid: str, phone: str) -> None:
    """The caller's number onto the visitor's person; a missing store only costs the link."""
    try:
        await identity.link(uid, phone)
    except BandError as exc:
        logger.debug('caller not linked', error=str(exc))
