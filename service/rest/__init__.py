"""The REST front door: `/predict`, TensorFlow Serving's REST API and the Open Inference Protocol over HTTP."""
