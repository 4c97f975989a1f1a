"""An enricher for the panel's tests: its answer lands at data.tagger in every greeter event."""

from band import expose


@expose.enricher(keys=["in.gen.greeter"], props={"ip": "td.ip"})
async def tag(ip=None, **rest):
    return {"segment": "returning", "ip_seen": ip}
