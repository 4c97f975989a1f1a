"""Cookie sync: /cookiesync/step walks the browser through every partner, then a pixel.

Step i redirects to partner i with our uid and a return URL to step i+1; the partner
appends its own id to that URL as `pid`, so each step's event carries it in data (the
edge keeps every hit). The partner's id also joins the visitor's person in the store's
identity graph as `partner:<partner host>:<pid>` (docs/identity.md), in the background.
Put `<img src="https://edge/cookiesync/step">` on a page.
"""

from typing import Any
from urllib.parse import quote, urlsplit

from band import BandError, expose, identity, logger, response, scheduler, settings


@expose.handler()
async def step(uid: str, data: dict[str, Any], **params: Any) -> Any:
    partners: list[str] = settings.partners
    i = int(data['i']) if str(data.get('i', '')).isdigit() else 0
    pid = str(data.get('pid') or '')
    if 1 <= i <= len(partners) and pid:
        scheduler.spawn(link(uid, f"partner:{urlsplit(partners[i - 1]).hostname}:{pid}"))
    if i >= len(partners):
        return response.pixel(data={'synced': len(partners)})
    back = f"{settings.edge_url.rstrip('/')}/cookiesync/step?i={i + 1}"
    location = partners[i].format(uid=quote(uid, safe=''), next=quote(back, safe=''))
    return response.redirect(location, data={'partner': i})


async def link(uid: str, partner_id: str) -> None:
    """The partner's id onto the visitor's person; a missing store (or a bad id) only costs the link."""
    try:
        await identity.link(uid, partner_id)
    except BandError as exc:
        logger.debug('partner id not linked', error=str(exc))
