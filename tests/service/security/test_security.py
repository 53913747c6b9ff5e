"""API keys and certificates as files: what a keys file may hold, constant-time acceptance, a reload that
keeps the old secret when the new file is unusable, and the settings that must go together."""

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.errors import Unauthenticated
from service.security import ApiKeys, Certificates, Secrets, UnusableSecret
from service.security.keys import digest_line, presented
from tests.pki import Authority

KEY = "a-key-of-twenty-chars"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(f"# comment\n\n  {KEY}  \n{digest_line('another-key-0123456789')}\n")
    return path


def test_keys_are_taken_plain_or_as_digests_and_nothing_else(keys_file: Path) -> None:
    keys = ApiKeys(keys_file)
    assert keys.accepts(KEY) and keys.accepts("another-key-0123456789")
    assert not any(keys.accepts(k) for k in (None, "", KEY[:-1], KEY + "x", "# comment", digest_line(KEY)))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("short-key", "16 characters at least"),
        ("a key with spaces in it", "without spaces"),
        ("sha256:abc", "64 hex digits"),
    ],
)
def test_a_malformed_keys_file_names_its_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{KEY}\n{line}\n")
    with pytest.raises(UnusableSecret, match=f"line 2: .*{problem}"):
        ApiKeys(path)


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        (f"Bearer {KEY}", None, KEY),
        (f"bearer   {KEY} ", None, KEY),
        (None, KEY, KEY),
        ("Basic dXNlcjpwYXNz", KEY, KEY),  # not a bearer credential: the other header decides
        ("Bearer ", None, None),
        (None, None, None),
    ],
)
def test_the_key_is_the_bearer_credential_or_the_api_key_header(
    authorization: str | None, api_key: str | None, expected: str | None
) -> None:
    assert presented(authorization, api_key) == expected


def test_require_raises_unauthenticated_with_how_to_send_a_key(keys_file: Path) -> None:
    keys = ApiKeys(keys_file)
    keys.require(f"Bearer {KEY}", None)
    with pytest.raises(Unauthenticated, match="Authorization: Bearer <key>"):
        keys.require(None, "wrong-key-0123456789")


def test_a_reload_takes_new_keys_and_keeps_the_old_ones_if_the_file_is_unusable(keys_file: Path) -> None:
    secrets = Secrets(Settings(api_keys_file=keys_file))
    assert secrets.keys is not None and secrets.files == [keys_file]
    keys_file.write_text("rotated-key-0123456789\n")
    secrets.reload("a file changed")
    assert secrets.keys.accepts("rotated-key-0123456789") and not secrets.keys.accepts(KEY)
    keys_file.write_text("short\n")
    secrets.reload("a file changed")
    assert secrets.keys.accepts("rotated-key-0123456789")


def test_certificates_want_tls_1_2_at_least_and_a_matching_key(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "ca")
    server, other = ca.issue("server", server=True), ca.issue("other", server=True)
    certificates = Certificates(server.cert, server.key, ca.cert)
    context = certificates.ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and certificates.mutual
    with pytest.raises(UnusableSecret, match="do not make a certificate"):
        Certificates(server.cert, other.key, None)
    server.key.write_bytes(other.key.read_bytes())
    with pytest.raises(UnusableSecret):
        certificates.reload()
    assert certificates.ssl_context() is context  # the listener never changes; what it hands out does


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"tls_cert_file": "c.pem"}, "go together"),
        ({"tls_key_file": "k.pem"}, "go together"),
        ({"tls_client_ca_file": "ca.pem"}, "needs MNIST_TLS_CERT_FILE"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(settings: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(**settings)
