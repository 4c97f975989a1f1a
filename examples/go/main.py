"""A wildcard redirect, as documented: every /go/<name> is answered here."""

from typing import Any
from urllib.parse import quote

from band import expose, response, settings


# method accessible on https://your.domain/go/*any_key*
@expose.handler(alias='go', name='*')
async def go(name: str, **params: Any) -> Any:
    url = settings.urls.get(name, None)
    return response.redirect(url or settings.search.format(name=quote(name)), data={'link': name})
