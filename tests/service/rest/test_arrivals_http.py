"""The REST front door's count for the batcher, on a real uvicorn: connections and requests in the app."""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx

from service.config import Settings
from service.core.arrivals import HttpArrivals
from service.core.dataplane import DataPlane
from service.metrics import Metrics
from service.rest.server import RestServer
from service.runtimes import default_runtimes
from tests.e2e.server import free_port

SEVEN = json.loads((Path(__file__).resolve().parents[3] / "docs" / "examples" / "seven.json").read_text())


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # a closed socket reaches the server within a loop turn or two; 10 s at most
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_keep_alive_client_counts_as_one_idle_connection_until_it_closes(default_repo: Path) -> None:
    settings = Settings(model_dir=default_repo, poll_interval_s=0, access_log=False, host="127.0.0.1", port=free_port())
    plane = DataPlane(settings, runtimes=default_runtimes(settings), metrics=Metrics())
    await plane.start()
    server = RestServer(settings, plane)
    await server.start()
    try:
        (http,) = plane.arrivals.sources
        assert isinstance(http, HttpArrivals)
        assert (http.connections, http.in_app, plane.arrivals.possible()) == (0, 0, False)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
            for _ in range(3):
                answer = await client.post("/predict", json={"image": SEVEN["image"]})
                assert answer.status_code == 200
            # The answer is out and the connection kept: this client may send again, so a batch may wait.
            assert (http.connections, http.in_app, plane.arrivals.possible()) == (1, 0, True)
        await _until(lambda: http.connections == 0)
        assert not plane.arrivals.possible()
    finally:
        await server.stop()
        await plane.stop()
