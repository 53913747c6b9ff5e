"""API keys for inference: `MNIST_API_KEYS_FILE`, one key per line.

A line holds a key itself (16 characters at least), or `sha256:` and the key's SHA-256 digest in hex, so
that the file need not hold the secret; a line that starts with `#` is a comment. Keys are kept as
digests, and a presented key is hashed and compared with every digest in constant time
(`hmac.compare_digest`, no early exit), so the time an answer takes says nothing of how close a guess came.

Where a key travels is each protocol's rule, and is stated here once: `Authorization: Bearer <key>` or
`X-API-Key: <key>` over HTTP, the same names as gRPC metadata (lowercase).
"""

import hashlib
import hmac
import re
from pathlib import Path

from service.errors import Unauthenticated
from service.security.unusable import UnusableSecret

AUTHORIZATION = "authorization"
API_KEY = "x-api-key"
MIN_KEY_CHARS = 16
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
REFUSAL = f"a valid API key is required: send it as 'Authorization: Bearer <key>' or '{API_KEY}: <key>'"


class ApiKeys:
    def __init__(self, path: Path) -> None:
        self.files = (path,)
        self._digests = _read(path)

    def reload(self) -> None:
        self._digests = _read(self.files[0])

    def require(self, authorization: str | None, api_key: str | None) -> None:
        """Return if the key presented in either header is one of the keys, else raise Unauthenticated."""
        if not self.accepts(presented(authorization, api_key)):
            raise Unauthenticated(REFUSAL)

    def accepts(self, key: str | None) -> bool:
        if not key:
            return False
        digest = hashlib.sha256(key.encode()).digest()
        accepted = False
        for known in self._digests:  # all of them, whatever matched
            accepted |= hmac.compare_digest(digest, known)
        return accepted


def presented(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: the bearer credential of `authorization`, else `x-api-key`."""
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
    return api_key.strip() if api_key else None


def digest_line(key: str) -> str:
    """The line that lets `key` in without writing it down."""
    return f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _read(path: Path) -> tuple[bytes, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UnusableSecret(f"the API keys file {path} cannot be read: {e}") from None
    digests = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        hashed = _DIGEST.fullmatch(line)
        if hashed:
            digests.append(bytes.fromhex(hashed.group(1)))
        elif line.startswith("sha256:"):
            raise UnusableSecret(f"{path}, line {number}: 'sha256:' must be followed by 64 hex digits")
        elif len(line) < MIN_KEY_CHARS or any(c.isspace() for c in line):
            raise UnusableSecret(f"{path}, line {number}: a key is {MIN_KEY_CHARS} characters at least, without spaces")
        else:
            digests.append(hashlib.sha256(line.encode()).digest())
    return tuple(digests)
