"""The snippets of the Band API page, as one runnable service.

Each function keeps the documented code; comments say what band adds.
Try it with the edge (`band up`): /docs/pix, /docs/get_state, /docs/error, ...
"""

import asyncio
from itertools import count
from types import SimpleNamespace
from typing import Any

from band import cleanup, expose, logger, response, settings, worker

# The docs use a free-form `state`; a namespace is the smallest thing that fits.
state = SimpleNamespace(counter=0, events=0, loaded=False, loop=0)


@expose.handler()
async def pix(**params: Any) -> Any:
    """A tracking pixel that counts its hits."""
    state.counter += 1
    return response.pixel()


@expose.handler()
async def get_state(**params: Any) -> Any:
    return response.data(vars(state))


@expose.handler()
async def error(**params: Any) -> Any:
    return response.error('Some F*cking error')


# short version; timeout (ms) tells the edge to wait longer than its 200 ms default
@expose.handler(timeout=5000)
async def long_method(**params: Any) -> Any:
    await asyncio.sleep(settings.long_method_seconds)
    return response(params)


# or without response
@expose.handler()
async def alias(**params: Any) -> Any:
    return {'message': 'you are catch me!'}


@expose.handler()
async def protected(data: dict[str, Any], **params: Any) -> Any:
    """Settings with `{{API_KEY}}`: /docs/protected?key=dev-key."""
    if data.get('key') != settings.api_key:
        return response.error(statusCode=403)
    return {'pool': settings.pool, 'extra': settings.extra}


@expose.enricher(props={'ip': 'td.ip', 'ua': 'td.ua', 'uid': 'uid'}, keys=['in.gen.track'])
async def enrich(ip: str | None, ua: str | None, uid: str | None, **params: Any) -> Any:
    """Added to every in.gen.track.* message as data.docs."""
    return {'param1': 'value1'}


@expose.listener()
async def broadcast(**params: Any) -> None:
    """Every final message; the return value is ignored."""
    state.events += 1


@worker()
async def service_worker() -> None:
    for num in count():
        # Handle errors so the loop survives them
        try:
            # The first pass initialises
            if num == 0:
                state.loaded = True
            # Work done every pass
            state.loop = num
        except asyncio.CancelledError:
            # The service is stopping
            break
        except Exception:
            logger.exception('my service exception')
        # Wait 5 seconds before the next pass (stop cancels this sleep)
        await asyncio.sleep(5)


@cleanup()
async def service_cleanup() -> None:
    # Runs at stop, with 0.1 s to finish
    state.loaded = False
