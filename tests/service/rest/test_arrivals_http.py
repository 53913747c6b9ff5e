"""The REST front door's count for the batcher, on a real uvicorn: connections and requests in the app."""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from service.config import Settings
from service.core.arrivals import Arrivals, HttpArrivals
from service.rest.server import RestServer
from service.security import Secrets
from tests.e2e.server import free_port
from tests.helpers import started_core

SEVEN = json.loads((Path(__file__).resolve().parents[3] / "docs" / "examples" / "seven.json").read_text())


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # a closed socket reaches the server within a loop turn or two; 10 s at most
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_keep_alive_client_counts_as_one_idle_connection_until_it_closes(default_repo: Path) -> None:
    settings = Settings(model_dir=default_repo, poll_interval_s=0, access_log=False, host="127.0.0.1", port=free_port())
    http = HttpArrivals()
    arrivals = Arrivals((http,))
    async with started_core(settings, arrivals=arrivals) as core:
        server = RestServer(
            settings, core.plane, manager=core.manager, metrics=core.metrics, arrivals=http, secrets=Secrets(settings)
        )
        await server.start()
        try:
            assert (http.connections, http.in_app, arrivals.possible()) == (0, 0, False)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
                for _ in range(3):
                    answer = await client.post("/predict", json={"image": SEVEN["image"]})
                    assert answer.status_code == 200
                # The answer is out and the connection kept: this client may send again, so a batch may wait.
                assert (http.connections, http.in_app, arrivals.possible()) == (1, 0, True)
            await _until(lambda: http.connections == 0)
            assert not arrivals.possible()
        finally:
            await server.stop()
