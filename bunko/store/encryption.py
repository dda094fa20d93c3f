"""Objects encrypted at rest with AES-256-GCM (the ``cryptography`` library), for any object store.

The embedded default keeps raw PDFs, OCR outputs and page images as files under its data
directory; with a key set (``BUNKO_ENCRYPTION_KEY`` or ``BUNKO_ENCRYPTION_KEY_FILE``: 32 random
bytes, base64) every object is written sealed and read back opened, so the files on disk are
ciphertext. What this does not cover: the database (SQLite file or PostgreSQL) and the vector
store hold chunk text and page text; put the data directory on an encrypted volume (LUKS,
fscrypt, an encrypted cloud disk) for those. In a cluster the object store encrypts on its side
(S3 server-side encryption, ``BUNKO_S3_SSE``); the two can be combined.

A sealed object: ``BKE1`` | key id (8 bytes) | nonce (12 bytes) | ciphertext and GCM tag. The
object's key is the associated data, so a sealed object moved to another key does not open. The
key id names which key sealed it: rotating means a new ``BUNKO_ENCRYPTION_KEY`` with the old one
in ``BUNKO_ENCRYPTION_PREVIOUS_KEYS`` (objects sealed with it still open; ``bunko objects reseal``
rewrites them under the new key, after which the old one can go). An object written before
encryption was turned on (no ``BKE1``) is read as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bunko.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    from bunko.settings import Settings
    from bunko.store.objects import ObjectStore

MAGIC = b"BKE1"
_KID, _NONCE = 8, 12
KEYGEN_HINT = "make one with: python -c \"import os, base64; print(base64.b64encode(os.urandom(32)).decode())\""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"bunko-object-key" + key).digest()[:_KID]


def decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: an encryption key is 32 random bytes in base64 (44 characters); {KEYGEN_HINT}")
    return key


@dataclass(frozen=True)
class ObjectKeys:
    current: bytes
    previous: tuple[bytes, ...] = ()

    def by_id(self, kid: bytes) -> bytes | None:
        for key in (self.current, *self.previous):
            if key_id(key) == kid:
                return key
        return None


def keys_from_settings(settings: Settings) -> ObjectKeys | None:
    """The object keys the settings name, or None when objects are not encrypted."""
    text = ""
    if settings.encryption_key is not None:
        text, where = settings.encryption_key.get_secret_value(), "BUNKO_ENCRYPTION_KEY"
    elif settings.encryption_key_file is not None:
        where = f"BUNKO_ENCRYPTION_KEY_FILE ({settings.encryption_key_file})"
        try:
            text = Path(settings.encryption_key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where} cannot be read: {type(exc).__name__}") from None
    else:
        if settings.encryption_previous_keys:
            raise ConfigError("BUNKO_ENCRYPTION_PREVIOUS_KEYS is set without BUNKO_ENCRYPTION_KEY")
        return None
    previous = tuple(decode_key(k.get_secret_value(), "BUNKO_ENCRYPTION_PREVIOUS_KEYS")
                     for k in settings.encryption_previous_keys)
    return ObjectKeys(decode_key(text, where), previous)


def seal(keys: ObjectKeys, name: str, data: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return MAGIC + key_id(keys.current) + nonce + AESGCM(keys.current).encrypt(nonce, data, name.encode())


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def open_sealed(keys: ObjectKeys, name: str, blob: bytes) -> bytes:
    if not is_sealed(blob):
        return blob  # written before encryption was turned on
    kid = blob[len(MAGIC):len(MAGIC) + _KID]
    key = keys.by_id(kid)
    if key is None:
        raise ConfigError(f"object {name} was sealed with a key that is not configured (key id {kid.hex()}); "
                          "set that key in BUNKO_ENCRYPTION_PREVIOUS_KEYS")
    start = len(MAGIC) + _KID
    nonce, sealed = blob[start:start + _NONCE], blob[start + _NONCE:]
    try:
        return AESGCM(key).decrypt(nonce, sealed, name.encode())
    except InvalidTag:
        raise StoreUnavailable(f"object {name} failed its integrity check (altered, or moved from another key); "
                               "restore it from a backup") from None


class EncryptedObjectStore:
    """An object store whose objects are sealed on the way in and opened on the way out."""

    def __init__(self, inner: ObjectStore, keys: ObjectKeys) -> None:
        self.inner, self.keys = inner, keys

    def __repr__(self) -> str:
        return f"EncryptedObjectStore({self.inner!r})"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.inner.put(key, seal(self.keys, key, data), content_type="application/octet-stream")

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        # Uploads are bounded (BUNKO_MAX_UPLOAD_BYTES): sealing in memory is fine.
        self.put(key, Path(path).read_bytes(), content_type)

    def get(self, key: str) -> bytes:
        return open_sealed(self.keys, key, self.inner.get(key))

    def get_or_none(self, key: str) -> bytes | None:
        blob = self.inner.get_or_none(key)
        return None if blob is None else open_sealed(self.keys, key, blob)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)

    def list(self, prefix: str = "") -> list[str]:
        return self.inner.list(prefix)

    def presigned_url(self, key: str, expires_s: int = 900) -> str | None:
        return None  # the bytes at rest are ciphertext: downloads stream through Bunko

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        data = self.get(key)
        for i in range(0, len(data), chunk_size):
            yield data[i:i + chunk_size]

    def ping(self) -> None:
        self.inner.ping()

    def reseal(self) -> int:
        """Rewrite every object not sealed with the current key; returns how many were rewritten."""
        current, done = key_id(self.keys.current), 0
        for name in self.inner.list(""):
            blob = self.inner.get(name)
            if is_sealed(blob) and blob[len(MAGIC):len(MAGIC) + _KID] == current:
                continue
            self.put(name, open_sealed(self.keys, name, blob))
            done += 1
        return done
