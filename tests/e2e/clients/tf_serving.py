"""`python tf_serving.py HOST:PORT IMAGES.npy VERSION`: TensorFlow Serving's own client (tensorflow-serving-api) calls
Predict, GetModelMetadata and GetModelStatus; prints what came back as JSON (probabilities as uint32 bits)."""

import json
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def main(target: str, images: str, version: str) -> None:
    x = np.load(images)
    with grpc.insecure_channel(target) as channel:
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.model_spec.signature_name = "serving_default"
        request.model_spec.version.value = int(version)
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x, dtype=tf.float32))
        response = predictions.Predict(request, timeout=30)
        probabilities = tf.make_ndarray(response.outputs["probabilities"])
        metadata = predictions.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec={"name": "mnist"}, metadata_field=["signature_def"]
            )
        )
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist"})
        )
    print(
        json.dumps(
            {
                "bits": probabilities.astype(np.float32).view(np.uint32).tolist(),
                "version": response.model_spec.version.value,
                "inputs": sorted(signatures.signature_def["serving_default"].inputs),
                "states": [
                    get_model_status_pb2.ModelVersionStatus.State.Name(s.state) for s in status.model_version_status
                ],
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
