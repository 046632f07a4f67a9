"""The journal's signing key: Ed25519, held in the user's config directory.

Hashes chain the records, so an edit shows; but a writer who rewrites a
whole journal, and the index beside it, can recompute every hash. Each
record's hash is therefore also signed with a key the agent never sees: it
lives in ``$XDG_CONFIG_HOME/luminaguard/journal.key`` (0600, in a 0700
directory, created at the first run), outside every workspace and never
mounted into a sandbox. The public half is written into each journal's first
record; ``audit verify`` checks every signature against this user's key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from luminaguard.errors import AuditError

KEY_NAME = "journal.key"


def key_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "luminaguard" / KEY_NAME


class Signer:
    """Signs record hashes with this user's journal key."""

    def __init__(self, private: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(private)
        self.public = _b64(self._key.public_key().public_bytes_raw())

    @classmethod
    def for_user(cls) -> Signer:
        """This user's key, created (0600, never readable by anyone else) if there is none."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(user_key(KEY_NAME, lambda: Ed25519PrivateKey.generate().private_bytes_raw()))

    def sign(self, digest: str) -> str:
        return _b64(self._key.sign(digest.encode("ascii")))


def user_key(name: str, make: Callable[[], bytes]) -> bytes:
    """The secret ``name`` in this user's config directory, made by ``make``
    (0600, in a 0700 directory) if there is none yet."""
    path = key_path().with_name(name)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    secret = make()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # another process made it first: use that one
        return _read(path)
    except OSError as exc:
        raise AuditError(f"cannot create the key {path}: {exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secret))
    return secret


def user_public_key() -> str | None:
    """This user's public journal key, or None when there is none yet."""
    try:
        return Signer(_read(key_path())).public
    except FileNotFoundError:
        return None


def signed_by(public: str, digest: str, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public))
        key.verify(base64.b64decode(signature), digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True


def fingerprint(public: str) -> str:
    import hashlib

    return hashlib.sha256(public.encode("ascii")).hexdigest()[:16]


def _read(path: Path) -> bytes:
    try:
        return base64.b64decode(path.read_bytes(), validate=True)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise AuditError(f"the key {path} cannot be read: {exc}") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
