"""The object store: raw PDFs, OCR outputs and thumbnails, on a local directory or on S3.

Keys are ``/``-separated relative paths under three prefixes (``raw-pdfs/``, ``ocr-outputs/``,
``thumbnails/``; every key is made in ``bunko.store.keys``). The two back ends behave the same
for everything the core does; only ``presigned_url`` differs (a directory has no URLs, so it
returns ``None`` and the API streams).

Chosen by ``Settings.resolved_object_store_url``:

- ``file:///abs/path``      a directory (embedded default: ``<data_dir>/objects``)
- ``s3://host:port``        S3 over plain HTTP (MinIO in the chart, SeaweedFS in tests)
- ``s3+https://host:port``  S3 over TLS

The bucket is ``Settings.s3_bucket``; it is created on first use if missing.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from bunko import tracing
from bunko.errors import ConfigError, InvalidInput, NotFound, StoreUnavailable
from bunko.settings import Settings
from bunko.store import keys
from bunko.store.keys import OCR_OUTPUTS

MAX_KEY_LENGTH = 1024
_TMP_PREFIX = ".tmp-"
# Files at least this big go to S3 in parts; smaller ones in one PUT.
MULTIPART_PART_SIZE = 16 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@runtime_checkable
class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_or_none(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def presigned_url(self, key: str, expires_s: int = 900) -> str | None: ...
    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...
    def ping(self) -> None: ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or mean different things on the two back ends."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"object key must be 1..{MAX_KEY_LENGTH} characters, got {len(key)}")
    if key.startswith("/") or key.endswith("/") or "\\" in key or "\x00" in key:
        raise InvalidInput(f"invalid object key {key!r}: no leading or trailing '/', '\\' or NUL")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"invalid object key {key!r}: empty, '.' and '..' segments are not allowed")
    if any(p.startswith(_TMP_PREFIX) for p in parts):
        raise InvalidInput(f"invalid object key {key!r}: segments may not start with {_TMP_PREFIX!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-like string that may end with '/'."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


# --- directory ----------------------------------------------------------------------------------


class DirectoryObjectStore:
    """Objects as files under ``root``. Writes are atomic: a temp file in the same folder, fsync,
    rename — a reader never sees half a PDF, and a crash leaves at most a ``.tmp-*`` file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"DirectoryObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # Symlinks inside the root could still point outside it.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidInput(f"object key {key!r} resolves outside the object store")
        return path

    def _write(self, key: str, write: Any) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            raise StoreUnavailable(f"cannot write object {key!r} under {self.root}: {e}") from e

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self._write(key, lambda fh: fh.write(data))

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        def copy(fh: Any) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)

        self._write(key, copy)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise NotFound(f"object {key!r} not found") from e
        except OSError as e:
            raise StoreUnavailable(f"cannot read object {key!r} under {self.root}: {e}") from e

    def get_or_none(self, key: str) -> bytes | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        # Empty folders left by deletes are removed so listing stays cheap.
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 900) -> str | None:
        check_key(key)
        return None

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            fh = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise NotFound(f"object {key!r} not found") from e
        return _file_chunks(fh, chunk_size)

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"object store directory {self.root} is missing or not writable")


def _file_chunks(fh: io.BufferedReader, chunk_size: int) -> Iterator[bytes]:
    with fh:
        while block := fh.read(chunk_size):
            yield block


# --- S3 -----------------------------------------------------------------------------------------

_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound", "NotFound"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
               "ExpiredToken"}


def _server_side_encryption(kind: str, kms_key_id: str, secure: bool) -> Any:
    """minio's SSE for BUNKO_S3_SSE ("SSE-S3", "SSE-KMS" with its key id), or None."""
    if not kind:
        return None
    from minio.sse import SseKMS, SseS3

    if kind == "SSE-S3":
        return SseS3()
    if not kms_key_id:
        raise ConfigError("BUNKO_S3_SSE=SSE-KMS needs BUNKO_S3_SSE_KMS_KEY_ID (the KMS key's id)")
    if not secure:
        raise ConfigError("BUNKO_S3_SSE=SSE-KMS sends the key id in headers S3 accepts only over TLS: "
                          "use BUNKO_OBJECT_STORE_URL=s3+https://host:port")
    return SseKMS(kms_key_id, {})


class S3ObjectStore:
    """One bucket on any S3 API (MinIO, SeaweedFS, AWS) through the ``minio`` client."""

    def __init__(
        self,
        endpoint: str,
        *,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        secure: bool = False,
        region: str = "us-east-1",
        sse: str = "",
        sse_kms_key_id: str = "",
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        part_size: int = MULTIPART_PART_SIZE,
    ) -> None:
        import certifi
        import urllib3
        from minio import Minio

        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = part_size
        self._where = f"{'https' if secure else 'http'}://{endpoint}/{bucket}"
        # Our own pool: short connect timeout and few retries, so an outage surfaces as
        # StoreUnavailable in seconds instead of minio's default minutes of retrying.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        # region given: presigning and requests never need a GetBucketLocation round trip.
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                             region=region, http_client=http)
        self._bucket_ready = False
        self._lock = threading.Lock()
        self._sse = _server_side_encryption(sse, sse_kms_key_id, secure)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self._where!r})"

    @contextlib.contextmanager
    def _errors(self, what: str, key: str | None = None) -> Iterator[None]:
        from minio.error import MinioException, S3Error

        attributes = {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": what,
                      "aws.s3.bucket": self.bucket, **({"aws.s3.key": key} if key else {})}
        try:
            with tracing.client_span(f"S3 {what}", **attributes):
                yield
        except S3Error as e:
            if e.code in _MISSING_CODES and key is not None:
                raise NotFound(f"object {key!r} not found") from e
            hint = (" — check BUNKO_S3_ACCESS_KEY / BUNKO_S3_SECRET_KEY and the bucket policy"
                    if e.code in _AUTH_CODES else "")
            raise StoreUnavailable(f"S3 {what} failed at {self._where}: {e.code}{hint}") from e
        except (MinioException, OSError, ValueError) as e:
            # urllib3's MaxRetryError / connection errors are OSError-compatible or wrapped in them.
            raise StoreUnavailable(
                f"S3 object store at {self._where} is unreachable ({what}): {type(e).__name__}"
            ) from e
        except Exception as e:
            import urllib3.exceptions

            if isinstance(e, urllib3.exceptions.HTTPError):
                raise StoreUnavailable(
                    f"S3 object store at {self._where} is unreachable ({what}): {type(e).__name__}"
                ) from e
            raise

    def _ready(self) -> None:
        if self._bucket_ready:
            return
        with self._lock, self._errors("bucket check"):
            if not self._bucket_ready:
                if not self._client.bucket_exists(self.bucket):
                    from minio.error import S3Error

                    try:
                        self._client.make_bucket(self.bucket)
                    except S3Error as e:
                        # Another process created it between our check and our create.
                        if e.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                            raise
                self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        check_key(key)
        self._ready()
        with self._errors("put", None):
            self._client.put_object(self.bucket, key, io.BytesIO(data), len(data),
                                    content_type=content_type, sse=self._sse)

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Streams the file; above ``part_size`` (minimum 5 MiB) it goes up as a multipart upload."""
        check_key(key)
        self._ready()
        with self._errors("put", None):
            self._client.fput_object(self.bucket, key, str(path), content_type=content_type,
                                     part_size=self.part_size, sse=self._sse)

    def get(self, key: str) -> bytes:
        check_key(key)
        self._ready()
        with self._errors("get", key):
            resp = self._client.get_object(self.bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()

    def get_or_none(self, key: str) -> bytes | None:
        try:
            return self.get(key)
        except NotFound:
            return None

    def exists(self, key: str) -> bool:
        check_key(key)
        self._ready()
        try:
            with self._errors("stat", key):
                self._client.stat_object(self.bucket, key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        check_key(key)
        self._ready()
        with self._errors("delete", None):
            self._client.remove_object(self.bucket, key)

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        self._ready()
        with self._errors("list", None):
            return sorted(
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name and not o.object_name.endswith("/")
            )

    def delete_prefix(self, prefix: str) -> int:
        from minio.deleteobjects import DeleteObject

        keys = self.list(prefix)
        if not keys:
            return 0
        with self._errors("delete", None):
            # remove_objects is lazy: the errors iterator must be consumed for anything to happen.
            errors = list(self._client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        if errors:
            raise StoreUnavailable(
                f"S3 delete of {len(errors)} of {len(keys)} objects under {prefix!r} failed at "
                f"{self._where}: {errors[0].code}"
            )
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 900) -> str | None:
        check_key(key)
        with self._errors("presign", None):
            return str(self._client.presigned_get_object(self.bucket, key,
                                                         expires=timedelta(seconds=expires_s)))

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        check_key(key)
        self._ready()
        with self._errors("get", key):
            resp = self._client.get_object(self.bucket, key)
        return self._stream(resp, key, chunk_size)

    def _stream(self, resp: Any, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors("get", key):
                yield from resp.stream(chunk_size)
        finally:
            resp.close()
            resp.release_conn()

    def ping(self) -> None:
        self._bucket_ready = False
        self._ready()


# --- choosing one -------------------------------------------------------------------------------


def open_object_store(settings: Settings) -> ObjectStore:
    from bunko.store.encryption import EncryptedObjectStore, keys_from_settings

    store = _open_plain(settings)
    keys = keys_from_settings(settings)
    return EncryptedObjectStore(store, keys) if keys else store


def _open_plain(settings: Settings) -> ObjectStore:
    url = settings.resolved_object_store_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(parts.path)
        if parts.netloc or not path.is_absolute():
            raise ConfigError(f"BUNKO_OBJECT_STORE_URL {url!r}: a file URL needs an absolute path, "
                              "e.g. file:///var/lib/bunko/objects")
        return DirectoryObjectStore(path)
    if parts.scheme in ("s3", "s3+https", "s3+http"):
        if not parts.hostname or parts.path.strip("/"):
            raise ConfigError(f"BUNKO_OBJECT_STORE_URL {url!r}: expected s3://host:port "
                              "(the bucket comes from BUNKO_S3_BUCKET)")
        return S3ObjectStore(
            parts.netloc,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            secure=parts.scheme == "s3+https",
            region=settings.s3_region,
            sse=settings.s3_sse,
            sse_kms_key_id=settings.s3_sse_kms_key_id,
        )
    raise ConfigError(f"BUNKO_OBJECT_STORE_URL {url!r}: unsupported scheme {parts.scheme!r}; "
                      "use file:///path, s3://host:port or s3+https://host:port")


def delete_document_objects(store: ObjectStore, collection_id: str, document_id: str, *,
                            raw_key: str = "") -> None:
    """Every object a document owns (``bunko.store.keys.document_objects``); idempotent."""
    names, prefixes = keys.document_objects(collection_id, document_id)
    for prefix in prefixes:
        store.delete_prefix(prefix)
    for key in dict.fromkeys([*names, raw_key]):
        if key:
            store.delete(key)


# --- OCR cache adapter --------------------------------------------------------------------------


class ObjectCache:
    """The small ``get(key) -> bytes | None`` / ``put`` interface the OCR cache wants."""

    def __init__(self, store: ObjectStore, prefix: str = OCR_OUTPUTS + "cache/") -> None:
        self.store = store
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        return self.store.get_or_none(self._key(key))

    def put(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self.store.put(self._key(key), data, content_type=content_type)

    def _key(self, key: str) -> str:
        return key if key.startswith(self.prefix) or key.startswith(OCR_OUTPUTS) else self.prefix + key


def ocr_cache(store: ObjectStore) -> ObjectCache:
    """The OCR output cache on top of the object store; keys land under ``ocr-outputs/``."""
    return ObjectCache(store)
