"""A handler the panel's tests send hits to, and a durable listener that always fails (dead letters)."""

from band import expose


@expose.handler()
async def hello(data, **params):
    return {"hello": data.get("who", "world")}


@expose.listener(keys=["in.gen.greeter.fail"], durable=True, max_deliver=1)
async def picky(**event):
    raise ValueError("this listener refuses every event")
