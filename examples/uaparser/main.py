"""User-agent enricher: OS, browser and device of every hit, from the `ua-parser` library.

The answer lands at data.uaparser, e.g. {"os_family": "Mac OS X", "os_version": [10, 13, 6], ...}.
"""

from functools import lru_cache
from typing import Any

import ua_parser

from band import expose, settings

# Compile the parser's rules now, while the service loads and before it subscribes: that is
# one native call holding the GIL for ~0.4 s, so run in a thread it would still stall every
# request this process serves (an RPC or handler beside it would miss its 200 ms deadline).
ua_parser.parse('')


def version(*parts: str | None) -> list[int | str]:
    """('10', '13', '6', None) -> [10, 13, 6]: the shape Rockstat's uaparser sent."""
    return [int(p) if p.isdigit() else p for p in parts if p]


@lru_cache(maxsize=int(settings.get('cache_size', 10_000)))
def describe(ua: str) -> dict[str, Any] | None:
    """Parse once per distinct user agent (about 1 ms each); repeats come from the cache."""
    result = ua_parser.parse(ua)
    browser, system, device = result.user_agent, result.os, result.device
    if not (browser or system or device):
        return None
    return {
        'os_family': system.family if system else None,
        'os_version': version(system.major, system.minor, system.patch) if system else [],
        'browser_family': browser.family if browser else None,
        'browser_version': version(browser.major, browser.minor, browser.patch) if browser else [],
        'device_family': device.family if device else None,
        'device_brand': device.brand if device else None,
        'device_model': device.model if device else None,
        'is_bot': bool(device and device.family == 'Spider'),
        **form_factor(ua, device.family if device else ''),
    }


def form_factor(ua: str, family: str) -> dict[str, bool]:
    """is_tablet / is_mob / is_pc, the flags the store's uaparser_is_* columns hold
    (ua-parser names devices, not their kind: tablets are iPads, Kindles and Android without 'Mobile')."""
    bot = family == 'Spider'
    tablet = not bot and ('iPad' in ua or 'Tablet' in ua or 'Kindle' in ua or ('Android' in ua and 'Mobile' not in ua))
    mobile = not bot and not tablet and ('Mobi' in ua or family in ('iPhone', 'iPod'))
    return {'is_tablet': tablet, 'is_mob': mobile, 'is_pc': not (bot or tablet or mobile)}


@expose.enricher(props={'ua': 'td.ua'}, keys=['in.gen'], bots=False)  # a crawler storm does not load UA parsing
async def enrich(ua: str | None, **params: Any) -> dict[str, Any] | None:
    """None (no user agent, or nothing recognised) adds nothing to the message."""
    return describe(ua) if ua else None
