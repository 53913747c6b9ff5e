"""The on-disk contract between `training` (which writes models) and `service` (which serves them).

A model repository is laid out TensorFlow Serving style::

    models/<name>/<version>/            version: a positive integer, no leading zeros
        saved_model.pb, variables/...   a SavedModel with the `serving_default` signature
        metadata.json                   `Metadata`, including golden probes
    models/<name>/labels.json           optional: version labels, {"stable": 1, "canary": 2}

The signature takes float32 `[None, 784]` raw pixel intensities in 0..255 (MNIST's own scale; the
model divides by 255 itself) and returns float32 `[None, 10]` softmax probabilities.
Directories whose names are not versions (staging folders start with ".") are never served.
"""

from contract.labels import LABEL_PATTERN, LABELS_FILENAME, is_label, labels_lock, read_labels, write_labels
from contract.layout import (
    METADATA_FILENAME,
    MODEL_NAME_PATTERN,
    VERSION_PATTERN,
    is_model_name,
    list_models,
    list_versions,
    parse_version,
    savedmodel_digest,
)
from contract.metadata import (
    ATTRIBUTIONS_NAME,
    BASELINE_PROBABILITY_NAME,
    CONFIDENCE_SIGNATURE,
    CONFIDENT_NAME,
    DIGIT_LIKE_NAME,
    EXPLAIN_SIGNATURE,
    EXPLAINED_DIGIT_NAME,
    EXPLAINED_PROBABILITY_NAME,
    IMAGE_PIXELS,
    INPUT_NAME,
    NUM_CLASSES,
    OUTPUT_NAME,
    PIXEL_MAX,
    PIXEL_MIN,
    SIGNATURE_KEY,
    TENSORFLOW_RUNTIME,
    DatasetInfo,
    GoldenProbes,
    Int8Weights,
    Metadata,
    read_metadata,
    write_metadata,
)
from contract.signature import (
    SavedModel,
    Serve,
    ServeAll,
    SignatureError,
    load_savedmodel,
    output_specs,
    serving_function,
    signature_function,
)

__all__ = [
    "ATTRIBUTIONS_NAME",
    "BASELINE_PROBABILITY_NAME",
    "CONFIDENCE_SIGNATURE",
    "CONFIDENT_NAME",
    "DIGIT_LIKE_NAME",
    "EXPLAINED_DIGIT_NAME",
    "EXPLAINED_PROBABILITY_NAME",
    "EXPLAIN_SIGNATURE",
    "IMAGE_PIXELS",
    "INPUT_NAME",
    "LABELS_FILENAME",
    "LABEL_PATTERN",
    "METADATA_FILENAME",
    "MODEL_NAME_PATTERN",
    "NUM_CLASSES",
    "OUTPUT_NAME",
    "PIXEL_MAX",
    "PIXEL_MIN",
    "SIGNATURE_KEY",
    "TENSORFLOW_RUNTIME",
    "VERSION_PATTERN",
    "DatasetInfo",
    "GoldenProbes",
    "Int8Weights",
    "Metadata",
    "SavedModel",
    "Serve",
    "ServeAll",
    "SignatureError",
    "is_label",
    "is_model_name",
    "labels_lock",
    "list_models",
    "list_versions",
    "load_savedmodel",
    "output_specs",
    "parse_version",
    "read_labels",
    "read_metadata",
    "savedmodel_digest",
    "serving_function",
    "signature_function",
    "write_labels",
    "write_metadata",
]
