"""BentoML serving the SavedModel with adaptive batching (`batchable=True`), one worker."""

import bentoml
import numpy as np
from model import MAX_BATCH, WINDOW_S, Model, answer


@bentoml.service(workers=1)
class Mnist:
    def __init__(self) -> None:
        self.model = Model()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=int(WINDOW_S * 1000))
    def predict(self, images: np.ndarray) -> list[dict[str, object]]:
        return [answer(row) for row in self.model.probabilities(images)]
