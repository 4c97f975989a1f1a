"""An enricher for the panel's tests: its answer lands at data.tagger in every greeter event.
Asked with ?slow=1 it answers after the edge's deadline (an enricher timeout on the charts)."""

import asyncio

from band import expose


@expose.enricher(keys=["in.gen.greeter"], props={"ip": "td.ip", "slow": "data.slow"})
async def tag(ip=None, slow=None, **rest):
    if slow:
        await asyncio.sleep(0.5)
    return {"segment": "returning", "ip_seen": ip}
