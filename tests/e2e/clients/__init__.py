"""Scripts that drive the server through third-party clients, each in a process of its own.

They run apart from pytest because the clients' generated protos and ours define the same message
names, and one process's protobuf pool takes each name once.
"""
