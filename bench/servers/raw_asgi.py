"""The limit: a bare ASGI app that parses the JSON into numpy and returns a fixed answer, no model."""

import numpy as np
import orjson

_ANSWER = orjson.dumps({"digit": 0, "probability": 1.0, "probabilities": [1.0] + [0.0] * 9})


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        np.asarray(orjson.loads(body)["image"], dtype=np.float32)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": _ANSWER})
