"""The gRPC front door: TensorFlow Serving's PredictionService and ModelService, and the Open Inference
Protocol's GRPCInferenceService (KServe v2, Triton), with health and reflection, on grpc.aio."""
