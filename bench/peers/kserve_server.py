"""KServe's Python model server on the v1 protocol. It has no batching of its own: in KServe, batching
is the Go agent's, a sidecar beside the model server (spec.predictor.batcher), so none runs here."""

import numpy as np
from kserve import Model as KServeModel
from kserve import ModelServer
from model import PORT, Model, answer


class Mnist(KServeModel):
    def __init__(self) -> None:
        super().__init__("mnist")
        self.load()

    def load(self) -> bool:
        self.model = Model()
        self.ready = True
        return self.ready

    async def predict(self, payload: dict, headers: dict | None = None, response_headers: dict | None = None) -> dict:
        probabilities = self.model.probabilities(np.asarray(payload["instances"], np.float32))
        return {"predictions": [answer(row) for row in probabilities]}


if __name__ == "__main__":
    ModelServer(http_port=PORT, workers=1, enable_grpc=False).start([Mnist()])
