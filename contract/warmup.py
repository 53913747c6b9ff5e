"""TensorFlow Serving's warm-up file: `assets.extra/tf_serving_warmup_requests` in a SavedModel, a TFRecord
file of `PredictionLog` records that TF Serving replays at load, so that a version's first real requests
do not pay for its lazy initialisation (graph optimisation, memory, each signature's first call).

Exports write one (`training.export`); the server reads it back here and replays it at load
(`service.grpc.warmup`), as TF Serving does. Only `predict_log` records can be replayed by this
server, which answers Classify, Regress and MultiInference with UNIMPLEMENTED: a file holding another
kind is refused whole rather than half replayed.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contract.metadata import INPUT_NAME

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's own limit


class WarmupError(Exception):
    """The warm-up file cannot be replayed; the message names the record."""


def write_warmup(savedmodel: Path, model_name: str, requests: Sequence[tuple[str, np.ndarray]]) -> Path:
    """Write one PredictRequest per (signature name, float32 pixels) as the SavedModel's warm-up file."""
    import tensorflow as tf

    from contract.protos.tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = savedmodel / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, x in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature),
                inputs={INPUT_NAME: tf.make_tensor_proto(np.asarray(x, np.float32))},
            )
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def warmup_requests(savedmodel: Path) -> Iterator[tuple[str, Any]]:
    """Each record's place (`<file>, record <n>`) and its PredictRequest; none without a file."""
    path = savedmodel / WARMUP_FILE
    if not path.is_file():
        return
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from contract.protos.tensorflow_serving.apis import prediction_log_pb2

    try:
        for number, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator(), start=1):
            where = f"{WARMUP_FILE}, record {number}"
            if number > MAX_RECORDS:
                raise WarmupError(f"{WARMUP_FILE} holds more than {MAX_RECORDS} records, TF Serving's limit")
            try:
                log = prediction_log_pb2.PredictionLog.FromString(record)
            except DecodeError:
                raise WarmupError(f"{where} is not a PredictionLog message") from None
            kind = log.WhichOneof("log_type")
            if kind != "predict_log":
                raise WarmupError(f"{where} is a {kind or 'empty log'}; only predict_log records can be replayed")
            yield where, log.predict_log.request
    except tf.errors.OpError as e:
        raise WarmupError(f"{WARMUP_FILE} is not a TFRecord file: {e.message}") from None
