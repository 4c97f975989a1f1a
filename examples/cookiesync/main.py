"""Cookie sync: /cookiesync/step walks the browser through every partner, then a pixel.

Step i redirects to partner i with our uid and a return URL to step i+1; the partner
appends its own id to that URL, so each step's event carries it in data (the edge
keeps every hit). Put `<img src="https://edge/cookiesync/step">` on a page.
"""

from typing import Any
from urllib.parse import quote

from band import expose, response, settings


@expose.handler()
async def step(uid: str, data: dict[str, Any], **params: Any) -> Any:
    partners: list[str] = settings.partners
    i = int(data['i']) if str(data.get('i', '')).isdigit() else 0
    if i >= len(partners):
        return response.pixel(data={'synced': len(partners)})
    back = f"{settings.edge_url.rstrip('/')}/cookiesync/step?i={i + 1}"
    location = partners[i].format(uid=quote(uid, safe=''), next=quote(back, safe=''))
    return response.redirect(location, data={'partner': i})
