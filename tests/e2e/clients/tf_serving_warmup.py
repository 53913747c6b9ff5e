"""`python tf_serving_warmup.py FILE REQUESTS.json`, beside TensorFlow Serving's own package
(tensorflow-serving-api): write a warm-up file as TF Serving's documentation does, one PredictRequest per
entry of REQUESTS.json (`{"signature": ..., "input": ..., "rows": [[784 pixels], ...]}`)."""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2


def main(path: str, requests: str) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for entry in json.loads(Path(requests).read_text()):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="mnist", signature_name=entry["signature"]),
                inputs={entry["input"]: tf.make_tensor_proto(np.asarray(entry["rows"], np.float32))},
            )
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


if __name__ == "__main__":
    main(*sys.argv[1:])
