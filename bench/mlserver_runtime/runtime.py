"""A small MLServer runtime serving the same SavedModel, so MLServer's adaptive batching can be measured."""

import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    async def load(self) -> bool:
        loaded = tf.saved_model.load(self.settings.parameters.uri)
        self._keep = loaded
        self._signature = loaded.signatures["serving_default"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32).reshape(-1, 784)
        probabilities = self._signature(pixels=tf.constant(pixels))["probabilities"].numpy()
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("probabilities", probabilities)],
        )
