"""TF Serving's warm-up file through TensorFlow Serving's own package (tensorflow-serving-api), as its users
write and read it:

- `python tf_serving_warmup.py write FILE REQUESTS.json` writes one PredictRequest per entry of REQUESTS.json
  (`{"signature": ..., "input": ..., "rows": [[784 pixels], ...]}`), as TF Serving's documentation does;
- `python tf_serving_warmup.py read FILE` prints each record's signature, input name and shape as JSON.
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2


def write(path: str, requests: str) -> None:
    with tf.io.TFRecordWriter(path) as writer:
        for entry in json.loads(Path(requests).read_text()):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name="mnist", signature_name=entry["signature"]),
                inputs={entry["input"]: tf.make_tensor_proto(np.asarray(entry["rows"], np.float32))},
            )
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read(path: str) -> None:
    records = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        for name, tensor in request.inputs.items():
            records.append([request.model_spec.signature_name, name, list(tf.make_ndarray(tensor).shape)])
    print(json.dumps(records))


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](*sys.argv[2:])
