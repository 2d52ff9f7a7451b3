"""The operator's Ed25519 key: signs tree heads and audit bundles.

The private key lives in ``$ORIGINE_HOME/keys/operator_ed25519.pem`` (created on
first use, mode 0600) or the file named by ``$ORIGINE_SIGNING_KEY_FILE``. Only
its public half and fingerprint are ever printed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from origine.errors import OrigineError

SIGNING_KEY_ENV = "ORIGINE_SIGNING_KEY_FILE"


def fingerprint(public: Ed25519PublicKey) -> str:
    """``ed25519:`` + the first 32 hex characters of SHA-256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def head_message(tree_size: int, root_hash: str, recorded_at: str) -> bytes:
    """The exact bytes a tree-head signature covers."""
    return f"origine tree head v1\n{tree_size}\n{root_hash}\n{recorded_at}\n".encode()


@dataclass(frozen=True)
class Signer:
    """An operator key able to sign."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        """The public half."""
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        """The public key's fingerprint."""
        return fingerprint(self.public)

    def public_pem(self) -> bytes:
        """The public key as PEM (what a regulator is given)."""
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> str:
        """Hex signature of ``message``."""
        return self.private.sign(message).hex()

    def sign_head(self, tree_size: int, root_hash: str, recorded_at: str) -> tuple[str, str]:
        """``(signature hex, fingerprint)`` over a tree head."""
        return self.sign(head_message(tree_size, root_hash, recorded_at)), self.fingerprint


def load_signer(keys_dir: Path, *, create: bool = True) -> Signer:
    """The operator key from ``$ORIGINE_SIGNING_KEY_FILE`` or ``keys_dir``, created if absent."""
    env = os.environ.get(SIGNING_KEY_ENV)
    path = Path(env) if env else keys_dir / "operator_ed25519.pem"
    if not path.exists():
        if env or not create:
            raise OrigineError(f"no operator signing key at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        (path.parent / "operator_ed25519.pub.pem").write_bytes(Signer(key).public_pem())
        return Signer(key)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise OrigineError(f"unreadable operator signing key {path}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise OrigineError(f"operator signing key {path} is not Ed25519")
    return Signer(key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (ValueError, OSError) as exc:
        raise OrigineError(f"unreadable public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise OrigineError(f"public key {path} is not Ed25519")
    return key


def verify(public: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    """True when ``signature_hex`` is a valid signature of ``message``."""
    try:
        public.verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError):
        return False
