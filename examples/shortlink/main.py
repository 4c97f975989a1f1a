"""Short links kept in a JetStream key-value bucket: shared by every replica, durable.

/s/<name> answers 302 to the stored URL; the edge keeps every hit as an event, and
the redirect's data names the link, so clicks are counted without extra code.
Links are made over RPC: `band call shortlink create link=promo url=https://...`.
"""

import re
from typing import Any
from urllib.parse import urlsplit

from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from band import current_app, expose, response, settings, worker

app = current_app()  # this service; its NATS connection exists once it runs
NAME = re.compile(r'^[A-Za-z0-9_-]{1,64}$')  # one routing-key token: /s/<name>
_links: KeyValue | None = None


async def links() -> KeyValue:
    """The bucket, opened (or created) on first use."""
    global _links
    if _links is None:
        js = app.connection().jetstream()
        try:
            _links = await js.key_value(settings.bucket)
        except BucketNotFoundError:
            _links = await js.create_key_value(bucket=settings.bucket, description='band short links')
    return _links


@worker()
async def open_bucket() -> None:
    """Open the bucket at start so the first click does not wait for it."""
    await links()


@expose.handler(alias='s', name='*')
async def follow(name: str, **params: Any) -> Any:
    try:
        entry = await (await links()).get(name)
    except KeyNotFoundError:  # also a deleted link
        return response.error('Link not found', 404, data={'link': name})
    return response.redirect((entry.value or b'').decode(), data={'link': name})


@expose()
async def create(link: str, url: str) -> Any:
    """Store a new link; an existing name is refused, not overwritten."""
    parts = urlsplit(url)
    if not NAME.match(link):
        return response.error('link must be 1-64 letters, digits, "_" or "-"', 400)
    if parts.scheme not in ('http', 'https') or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in url):
        return response.error('url must be an absolute http(s) URL without spaces', 400)
    try:
        await (await links()).create(link, url.encode())
    except KeyWrongLastSequenceError:
        return response.error(f'link {link!r} exists', 409)
    return {'link': link, 'url': url}
