"""Geo-IP enricher: country and network of the visitor's IP, offline.

geoip2fast ships its database inside the package, so nothing is downloaded and
no licence key is needed. The answer lands at data.geoip.
"""

import ipaddress
from typing import Any

from geoip2fast import GeoIP2Fast

from band import blocking, expose, settings, worker

_db: GeoIP2Fast | None = None


@blocking()
def open_database(data_file: str) -> GeoIP2Fast:
    return GeoIP2Fast(geoip2fast_data_file=data_file)


async def database() -> GeoIP2Fast:
    """Loaded once (~0.2 s, in a thread): by the worker at start, else by the first event."""
    global _db
    if _db is None:
        _db = await open_database(settings.data_file)
    return _db


def is_public(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


@expose.enricher(props={'ip': 'td.ip'}, keys=['in.gen'], bots=False)  # nor geo look-ups
async def enrich(ip: str | None, **params: Any) -> dict[str, Any] | None:
    """Private, reserved and malformed addresses add nothing (None)."""
    if not ip or not is_public(ip):
        return None
    found = (await database()).lookup(ip)
    if len(found.country_code) != 2:  # '--' or '': not in the database
        return None
    return {
        'country_code': found.country_code,
        'country_name': found.country_name,
        'network': found.cidr or None,
        'asn_name': found.asn_name or None,
    }


@worker()
async def preload() -> None:
    await database()
