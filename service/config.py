"""Every setting of the server, read from `MNIST_*` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract import defaults

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MNIST_", frozen=True)

    model_dir: Path = Field(defaults.MODELS_DIR, description="model repository: <dir>/<name>/<version>/")
    default_model: str = Field(defaults.MODEL_NAME, description="model that /predict serves when none is named")
    host: str = Field(defaults.HOST, description="address to bind; 0.0.0.0 for every interface (the image does)")
    port: int = Field(defaults.REST_PORT, ge=0, le=65535, description="port to bind")
    grpc_enabled: bool = Field(True, description="serve gRPC too (TF Serving and KServe v2 services)")
    grpc_port: int = Field(defaults.GRPC_PORT, ge=0, le=65535, description="gRPC port to bind")
    grpc_max_streams: int = Field(100, ge=1, description="concurrent gRPC calls on one connection at most")
    workers: int = Field(1, ge=1, description="worker processes, each with its own copy of the models")
    log_level: LogLevel = Field("info", description="JSON logs to stderr at this level")
    tf_log_level: LogLevel = Field("warning", description="TensorFlow's own log lines at this level and above")
    access_log: bool = Field(True, description="one structured log line per request")

    max_request_images: int = Field(256, ge=1, description="most images in one request")
    max_explain_images: int = Field(
        16, ge=1, description="most images one request may ask to explain (each costs many model calls)"
    )
    max_image_pixels: int = Field(
        16_000_000, ge=784, description="image files with more pixels (width x height) get 422, before decoding"
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="request bodies over this get 413")
    body_timeout_s: float = Field(
        10.0, gt=0, description="a body not fully received this long after it started gets 408"
    )
    max_connections: int = Field(1000, ge=1, description="open connections at most; past it, new ones get 503")
    header_timeout_s: float = Field(
        10.0, gt=0, description="a request whose headers are not all in this long after it began gets 408"
    )
    max_header_lines: int = Field(100, ge=8, description="a request with more header lines gets 431")
    max_header_bytes: int = Field(16384, ge=1024, description="a request with more bytes of headers gets 431")
    max_connections_per_client: int = Field(
        512, ge=0, description="open connections from one address at most; past it, 429; 0 turns the cap off"
    )
    max_json_depth: int = Field(32, ge=4, le=1000, description="JSON nested deeper than this gets 400")

    batch_max_rows: int = Field(64, ge=2, description="dynamic batching: most rows in one model call")
    batch_max_wait_ms: float = Field(0.0, ge=0, description="dynamic batching: wait this long for more rows")
    queue_max_rows: int = Field(4096, ge=1, description="rows waiting per model version before shedding with 503")
    model_thread: bool = Field(False, description="run the model in a worker thread instead of on the event loop")
    request_timeout_s: float = Field(10.0, gt=0, description="a request still waiting for the model then gets 504")

    versions_to_keep: int = Field(2, ge=1, description="serve the newest N healthy versions of each model")
    poll_interval_s: float = Field(5.0, ge=0, description="rescan the repository this often; 0 turns polling off")
    watch_repository: bool = Field(
        True, description="also rescan as soon as the repository changes (inotify and the like; polling stays on)"
    )
    self_check_repeats: int = Field(50, ge=2, description="calls of the batch-of-one determinism check at load")
    runtime: Literal["savedmodel", "auto", "litert", "litert-int8"] = Field(
        "auto",
        description="savedmodel: every version on TensorFlow; auto: also try LiteRT with the version's own "
        "weights, then with int8 weights where its export's gate passed, each serving where it passes the "
        "self-checks and is faster; litert: LiteRT's fp32 where it passes them, faster or not; litert-int8: "
        "int8 where offered and passing, else fp32, faster or not",
    )

    admin_token: SecretStr | None = Field(None, description="bearer token for /admin; admin is off without one")
    payload_log_url: AnyHttpUrl | None = Field(
        None, description="send sampled inference requests and responses here as CloudEvents (KServe's logger format)"
    )
    payload_log_sample: float = Field(0.0, ge=0, le=1, description="share of inference requests to log (0 to 1)")
    payload_log_max_queued: int = Field(
        1000, ge=2, description="payload events waiting for the sink at most; past it they are dropped and counted"
    )
    payload_log_timeout_s: float = Field(5.0, gt=0, description="how long one payload event may take to send")
    feedback_dir: Path | None = Field(
        None, description="keep corrections sent to POST /feedback here, for training; feedback is off without it"
    )
    feedback_max_digits: int = Field(100_000, ge=1, description="corrections kept at most; past it, 409")
    api_keys_file: Path | None = Field(
        None, description="inference needs one of the API keys in this file (one per line); re-read when it changes"
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain: HTTPS on the REST port and TLS on gRPC; re-read when it changes"
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of MNIST_TLS_CERT_FILE")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle: clients on both ports must present a certificate it signed (mTLS)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins; none by default")
    tf_intra_op_threads: int = Field(1, ge=0, description="TensorFlow threads inside one op; 0 lets TF choose")
    tf_inter_op_threads: int = Field(1, ge=0, description="TensorFlow ops run in parallel; 0 lets TF choose")
    graceful_shutdown_s: float = Field(20.0, ge=0, description="on SIGTERM, finish accepted requests for this long")

    @model_validator(mode="after")
    def _tls_is_whole(self) -> "Settings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("MNIST_TLS_CERT_FILE and MNIST_TLS_KEY_FILE go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("MNIST_TLS_CLIENT_CA_FILE needs MNIST_TLS_CERT_FILE and MNIST_TLS_KEY_FILE")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None
