"""Who may call, and over what: API keys for inference (`keys`), TLS and mTLS on both ports (`tls`), and
the `Secrets` that hold them, re-read from their files while serving (`Secrets.reload`)."""

import asyncio
import logging
from pathlib import Path

import watchfiles

from service.config import Settings
from service.security.keys import ApiKeys
from service.security.tls import Certificates
from service.security.unusable import UnusableSecret

__all__ = ["ApiKeys", "Certificates", "Secrets", "UnusableSecret"]

WATCH_DEBOUNCE_MS = 200

logger = logging.getLogger(__name__)


class Secrets:
    """The server's certificates and the inference keys, as the settings name them; each is None when off.

    Built at start, where an unusable file stops the server with a sentence that names it. `reload()`
    re-reads every file, on SIGHUP or when one changes: a file that has become unusable is logged and the
    old secret stays in use, so a half-written rotation never takes the server down.
    """

    def __init__(self, settings: Settings) -> None:
        self.certificates = (
            Certificates(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
            if settings.tls_cert_file is not None and settings.tls_key_file is not None
            else None
        )
        self.keys = ApiKeys(settings.api_keys_file) if settings.api_keys_file is not None else None

    @property
    def files(self) -> list[Path]:
        """Every file a reload reads."""
        held = [*(self.certificates.files if self.certificates else ()), *(self.keys.files if self.keys else ())]
        return list(dict.fromkeys(held))

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever a file's folder changes, until `stop` is set. The folder, not the file: a
        Kubernetes Secret volume swaps a symlinked folder rather than writing the files."""
        folders = sorted({str(f.parent) for f in self.files})
        if not folders:
            return
        try:
            async for _ in watchfiles.awatch(*folders, debounce=WATCH_DEBOUNCE_MS, stop_event=stop):
                self.reload("a file changed")
        except Exception as e:  # noqa: BLE001 - no change events here: SIGHUP still reloads
            logger.warning("not watching the secrets' files; SIGHUP reloads them", extra={"error": str(e)})

    def reload(self, cause: str = "SIGHUP") -> None:
        for secret in (self.certificates, self.keys):
            if secret is None:
                continue
            try:
                secret.reload()
            except UnusableSecret as e:
                logger.error("kept the secret in use: its file cannot be used", extra={"error": str(e), "cause": cause})
            else:
                logger.info("secret re-read", extra={"files": [str(f) for f in secret.files], "cause": cause})
