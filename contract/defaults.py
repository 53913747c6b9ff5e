"""What training and the service must agree on when nobody says otherwise: where the repository is, which
model is the default, and where the server listens."""

from pathlib import Path

MODELS_DIR = Path("models")
MODEL_NAME = "mnist"
HOST = "127.0.0.1"
REST_PORT = 8000
GRPC_PORT = 8001
