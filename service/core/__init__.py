"""The inference core: model versions, their runtimes, self-checks and batchers, behind one `DataPlane`.

Nothing here knows a protocol. Every front door (`service.rest`, ...) calls the same `DataPlane`.
"""
