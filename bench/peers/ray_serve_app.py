"""Ray Serve serving the SavedModel with @serve.batch: one replica, behind Ray's HTTP proxy."""

import time

import numpy as np
import ray
from model import MAX_BATCH, PORT, WINDOW_S, Model, answer
from ray import serve
from starlette.requests import Request


@serve.deployment(num_replicas=1, max_ongoing_requests=2 * MAX_BATCH)
class Mnist:
    def __init__(self) -> None:
        self.model = Model()

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=WINDOW_S)
    async def classify(self, images: list[np.ndarray]) -> list[dict[str, object]]:
        return [answer(row) for row in self.model.probabilities(np.stack(images))]

    async def __call__(self, request: Request) -> dict[str, object]:
        return await self.classify(np.asarray((await request.json())["image"], np.float32))


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(Mnist.bind(), route_prefix="/predict")
    while True:
        time.sleep(3600)
