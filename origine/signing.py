"""The operator's Ed25519 key: signs the ledger's checkpoints and audit bundles.

Checkpoints are C2SP signed notes (https://c2sp.org/signed-note): a text ending in
a newline, a blank line, then one line per signature, ``— <key name>
<base64(key ID || Ed25519 signature of the text)>``, the key ID being the first
four bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key).

The private key lives in ``$ORIGINE_HOME/keys/operator_ed25519.pem`` (created on
first use, mode 0600) or the file named by ``$ORIGINE_SIGNING_KEY_FILE``. Only
its public half and fingerprint are ever printed.
"""

from __future__ import annotations

import base64
import binascii
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
    return "ed25519:" + hashlib.sha256(raw_public(public)).hexdigest()[:32]


def raw_public(public: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of a public key."""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


ED25519_NOTE_TYPE = b"\x01"
"""The signed-note signature type identifier byte of Ed25519."""
_EM_DASH = "\u2014"


def note_key_id(name: str, public: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_NOTE_TYPE + raw_public(public)).digest()[:4]


def check_key_name(name: str) -> str:
    """``name`` when it can name a note key (non-empty, printable, no space, no '+');
    else ``ValueError``."""
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in name):
        raise ValueError(f"{name!r} cannot name a signed-note key (empty, space, control or '+')")
    return name


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text (final newline included) and signature lines of a signed note.

    ``ValueError`` when it is not one: not ending in a newline, a control character
    other than newline, no blank line before the signatures, a malformed line.
    """
    if not note.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise ValueError("not a signed note: it must end with a newline and hold no control character")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise ValueError("not a signed note: no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in block[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH:
            raise ValueError("not a signed note: a signature line is not '\u2014 <name> <base64>'")
        try:
            check_key_name(parts[1])
            raw = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            raise ValueError("not a signed note: bad key name or base64 in a signature line") from None
        if len(raw) < 5:
            raise ValueError("not a signed note: a signature shorter than its key ID")
        signatures.append(NoteSignature(parts[1], raw[:4], raw[4:]))
    if not signatures:
        raise ValueError("not a signed note: no signature line")
    return text, signatures


def open_note(note: str, public: Ed25519PublicKey, name: str) -> str:
    """The text of ``note`` once a signature by (``name``, ``public``) verifies.

    Signatures by other keys are ignored, as the signed-note spec requires; a note
    with none by this key, or one that fails, is refused (``ValueError``).
    """
    text, signatures = split_note(note)
    key_id = note_key_id(name, public)
    mine = [s for s in signatures if s.name == name and s.key_id == key_id]
    if not mine:
        raise ValueError(f"not signed by the operator's key {name} (key ID {key_id.hex()})")
    for s in mine:
        try:
            public.verify(s.signature, text.encode())
        except InvalidSignature:
            raise ValueError(f"the signature by {name} does not verify (text or signature altered)") from None
    return text


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

    def sign_note(self, text: str, name: str) -> str:
        """``text`` (ending in a newline) as a signed note signed under key ``name``."""
        if not text.endswith("\n"):
            raise ValueError("a note's text ends with a newline")
        check_key_name(name)
        raw = note_key_id(name, self.public) + self.private.sign(text.encode())
        return f"{text}\n{_EM_DASH} {name} {base64.b64encode(raw).decode()}\n"


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


def home_public_key(keys_dir: Path) -> Ed25519PublicKey:
    """The operator's public key as a home keeps it: ``operator_ed25519.pub.pem``, else
    the public half of the signing key (``$ORIGINE_SIGNING_KEY_FILE`` or the home's);
    never creates one."""
    pub = keys_dir / "operator_ed25519.pub.pem"
    if pub.exists() and not os.environ.get(SIGNING_KEY_ENV):
        return load_public_key(pub)
    try:
        return load_signer(keys_dir, create=False).public
    except OrigineError:
        raise OrigineError(
            f"no operator public key in {keys_dir}: give the operator's public key (--public-key FILE)"
        ) from None
