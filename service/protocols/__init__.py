"""The semantics of each protocol family, once, for its REST and gRPC doors alike.

A protocol module answers status, metadata and inference in neutral, typed results; a door only turns
wire messages into calls on it and its results back into wire messages.
"""
