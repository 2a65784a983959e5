"""Ed25519 signing keys and signatures over a bundle's digest.

For bundles outside MLflow (copied between machines, served from a folder) a
signature says who wrote them. :func:`generate_signing_key` writes a private key
(PEM, PKCS#8, mode 0600) and its public key beside it (``<key>.pub``);
:func:`plo_risk.sign_bundle` writes ``signature.ed25519`` into a bundle, over its
digest (:func:`plo_risk.model.bundle.bundle_digest`); ``load_bundle(path,
public_key=...)`` and ``RiskModel.load(path, public_key=...)`` refuse a bundle whose
signature is missing or is not by that key over that digest.

The signature file is a small JSON object::

    {"algorithm": "ed25519", "bundle_sha256": "<64 hex>", "format":
     "plo-risk-signature", "key_id": "<16 hex>", "signature": "<base64>"}

The signed message is ``b"plo-risk bundle signature v1\\n" + digest``, so a
signature over anything else cannot be passed off as one over a bundle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SIGNATURE_BYTES",
    "SIGNATURE",
    "SigningKeyError",
    "generate_signing_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "sign_digest",
    "signature_problem",
]

#: The signature's file name in a bundle (the only file besides the manifest's).
SIGNATURE = "signature.ed25519"
_FORMAT = "plo-risk-signature"
_MESSAGE = b"plo-risk bundle signature v1\n"
# A PEM key is a few hundred bytes, a signature file about 250.
MAX_KEY_BYTES = 16 << 10
MAX_SIGNATURE_BYTES = 4 << 10


class SigningKeyError(ValueError):
    """A key file that cannot be used: missing, unsafe permissions, not Ed25519."""


def _read_small(path: Path, limit: int, what: str) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes, never following a FIFO or a device (no blocking)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SigningKeyError(f"{path}: not a regular file; give the {what}")
        if info.st_size > limit:
            raise SigningKeyError(
                f"{path}: {info.st_size:,} bytes; a {what} is at most {limit:,}"
            )
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1), info
    finally:
        os.close(fd)


def generate_signing_key(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a new Ed25519 private key to ``path`` (mode 0600) and its public key.

    Parameters
    ----------
    path : str or Path
        The private key file (PEM). Keep it secret; never put it in a bundle.
    overwrite : bool, default=False
        Replace existing key files.

    Returns
    -------
    Path
        The public key file, ``<path>.pub`` (PEM), to give whoever loads bundles.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> key = pathlib.Path(tempfile.mkdtemp()) / "signing.key"
    >>> public = generate_signing_key(key)
    >>> oct(key.stat().st_mode & 0o777), public.name
    ('0o600', 'signing.key.pub')
    """
    path = Path(path)
    public = path.with_name(path.name + ".pub")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    for target in (path, public):
        if overwrite and (target.exists() or target.is_symlink()):
            target.unlink()
    # Created 0600 and never through a link: no moment where others can read it.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public.write_bytes(public_pem)
    return public


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key of a key file that only its owner can read.

    Raises
    ------
    SigningKeyError
        A missing file, one readable by group or others (``chmod 600`` it), or a
        file that is not a PEM Ed25519 private key.
    """
    path = Path(path)
    raw, info = _read_small(path, MAX_KEY_BYTES, "private key file")
    if info.st_mode & 0o077:
        raise SigningKeyError(
            f"{path}: the private key is readable or writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); restrict it with "
            f"'chmod 600 {path}' (and consider it leaked if others could read it)"
        )
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{path}: not an unencrypted PEM private key ({exc}); make one with "
            "plo-risk keygen"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{path}: a {type(key).__name__}, not an Ed25519 key; make one with "
            "plo-risk keygen"
        )
    return key


def load_public_key(key: Any) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, PEM bytes or a PEM file.

    Raises
    ------
    SigningKeyError
        A missing file or one that is not a PEM Ed25519 public key.
    """
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, bytes):
        raw, where = key, "the public key"
    elif isinstance(key, (str, os.PathLike)):
        raw, _ = _read_small(Path(key), MAX_KEY_BYTES, "public key file")
        where = str(key)
    else:
        raise SigningKeyError(
            f"public_key: a path, PEM bytes or an Ed25519PublicKey, not "
            f"{type(key).__name__}"
        )
    try:
        public = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{where}: not a PEM public key ({exc}); give the .pub file plo-risk "
            "keygen wrote"
        ) from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningKeyError(
            f"{where}: a {type(public).__name__}, not an Ed25519 public key"
        )
    return public


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (16 hex digits of its sha256)."""
    raw = public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_digest(digest: str, private_key: Ed25519PrivateKey) -> bytes:
    """The signature file's bytes for a bundle digest."""
    doc = {
        "algorithm": "ed25519",
        "bundle_sha256": digest,
        "format": _FORMAT,
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(
            private_key.sign(_MESSAGE + digest.encode())
        ).decode(),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def signature_problem(
    raw: bytes, digest: str, public_key: Ed25519PublicKey
) -> str | None:
    """Why a signature file does not sign ``digest`` with ``public_key``, or None."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        signature = base64.b64decode(doc["signature"], validate=True)
        if doc.get("format") != _FORMAT or doc.get("algorithm") != "ed25519":
            raise ValueError("not a plo-risk Ed25519 signature")
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        return f"not a plo-risk signature file ({type(exc).__name__}: {exc})"
    expected_id = key_id(public_key)
    try:
        public_key.verify(signature, _MESSAGE + digest.encode())
    except InvalidSignature:
        if doc.get("key_id") not in (None, expected_id):
            return (
                f"signed by another key (key id {doc.get('key_id')}), not the given "
                f"public key (key id {expected_id})"
            )
        if doc.get("bundle_sha256") != digest:
            return (
                f"signs another bundle (digest {doc.get('bundle_sha256')}; this "
                f"bundle's is {digest}): a file changed after signing"
            )
        return f"the signature does not verify with the public key {expected_id}"
    return None
