"""LitServe serving the SavedModel with its dynamic batching: one API server, one inference worker."""

import litserve as ls
import numpy as np
from model import MAX_BATCH, PORT, WINDOW_S, Model, answer


class Mnist(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = Model()

    def decode_request(self, request: dict) -> np.ndarray:
        return np.asarray(request["image"], np.float32)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.probabilities(x)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict[str, object]:
        return answer(output)


if __name__ == "__main__":
    api = Mnist(max_batch_size=MAX_BATCH, batch_timeout=WINDOW_S)
    # fast_queue: ZeroMQ between the API server and the worker, which LitServe advises above 100 req/s.
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, fast_queue=True)
    server.run(host="127.0.0.1", port=PORT, num_api_servers=1, generate_client_file=False)
