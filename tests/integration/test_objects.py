"""Object store: the directory and the S3 (real SeaweedFS) back ends pass the same tests."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from bunko.errors import ConfigError, InvalidInput, NotFound, StoreUnavailable
from bunko.store.objects import (
    DirectoryObjectStore,
    S3ObjectStore,
    ocr_cache,
    open_object_store,
)


@pytest.fixture(params=["directory", pytest.param("s3", marks=[pytest.mark.s3])])
def store(request, settings_factory):
    if request.param == "directory":
        return open_object_store(settings_factory())
    server = request.getfixturevalue("s3_server")
    return open_object_store(settings_factory(**server.settings_overrides()))


def test_open_picks_backend_by_url(store, request):
    expected = DirectoryObjectStore if "directory" in request.node.callspec.id else S3ObjectStore
    assert isinstance(store, expected)


def test_put_get_exists_delete(store):
    key = "raw-pdfs/c1/doc1.pdf"
    assert not store.exists(key)
    assert store.get_or_none(key) is None
    store.put(key, b"%PDF-1.7 hello", content_type="application/pdf")
    assert store.exists(key)
    assert store.get(key) == b"%PDF-1.7 hello"
    store.put(key, b"replaced")
    assert store.get(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting a missing object is not an error


def test_missing_object_is_not_found(store):
    with pytest.raises(NotFound, match=r"thumbnails/nope\.png"):
        store.get("thumbnails/nope.png")
    with pytest.raises(NotFound):
        store.iter_chunks("thumbnails/nope.png")


@pytest.mark.parametrize("bad", ["../etc/passwd", "raw-pdfs/../../x", "/abs", "a//b", "a/./b",
                                 "trailing/", "", "back\\slash", "nul\x00"])
def test_key_escape_rejected(store, bad):
    with pytest.raises(InvalidInput):
        store.put(bad, b"x")
    with pytest.raises(InvalidInput):
        store.get(bad)


def test_list_and_delete_prefix(store):
    keys = ["ocr-outputs/d1/p0001.md", "ocr-outputs/d1/p0002.md", "ocr-outputs/d10/p0001.md",
            "thumbnails/d1.png"]
    for k in keys:
        store.put(k, k.encode())
    assert store.list("ocr-outputs/") == sorted(keys[:3])
    assert store.list("ocr-outputs/d1/") == keys[:2]
    # A prefix is a string prefix, as on S3: "d1" matches "d10" too.
    assert store.list("ocr-outputs/d1") == sorted(keys[:3])
    assert store.list("") == sorted(keys)
    assert store.delete_prefix("ocr-outputs/d1/") == 2
    assert store.list("ocr-outputs/") == ["ocr-outputs/d10/p0001.md"]
    assert store.get("thumbnails/d1.png") == b"thumbnails/d1.png"
    assert store.delete_prefix("nothing-here/") == 0


def test_put_file_and_iter_chunks_roundtrip_large(store, tmp_path):
    # 6 MiB + a bit: on S3 above the single-PUT threshold only when the part size allows; the
    # content must survive either way, streamed back in chunks.
    data = os.urandom(6 * 1024 * 1024 + 123)
    src = tmp_path / "big.pdf"
    src.write_bytes(data)
    store.put_file("raw-pdfs/c1/big.pdf", src, content_type="application/pdf")
    parts = list(store.iter_chunks("raw-pdfs/c1/big.pdf", chunk_size=1 << 20))
    assert len(parts) >= 6
    assert hashlib.sha256(b"".join(parts)).digest() == hashlib.sha256(data).digest()


def test_presigned_url(store, request):
    store.put("thumbnails/p.png", b"\x89PNG fake", content_type="image/png")
    url = store.presigned_url("thumbnails/p.png", expires_s=60)
    if isinstance(store, DirectoryObjectStore):
        assert url is None
        return
    assert url is not None
    resp = httpx.get(url)
    assert resp.status_code == 200
    assert resp.content == b"\x89PNG fake"
    assert resp.headers["content-type"] == "image/png"
    # The signature is what grants access: the bare URL is refused.
    assert httpx.get(url.split("?", 1)[0]).status_code == 403


def test_ocr_cache_adapter(store):
    cache = ocr_cache(store)
    assert cache.get("abc/p1/rapidocr-3.10.json") is None
    cache.put("abc/p1/rapidocr-3.10.json", b"{}", "application/json")
    assert cache.get("abc/p1/rapidocr-3.10.json") == b"{}"
    assert all(k.startswith("ocr-outputs/") for k in store.list(""))


def test_ping_answers_while_the_directory_is_there_and_refuses_once_it_is_gone(tmp_path):
    store = DirectoryObjectStore(tmp_path / "objs")
    assert store.ping() is None
    store.put("raw-pdfs/a.pdf", b"1")
    import shutil

    shutil.rmtree(tmp_path / "objs")
    with pytest.raises(StoreUnavailable, match="missing or not writable"):
        store.ping()


def test_directory_store_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = DirectoryObjectStore(tmp_path / "objs")
    store.put("raw-pdfs/a.pdf", b"1")
    assert sorted(p.name for p in (tmp_path / "objs" / "raw-pdfs").iterdir()) == ["a.pdf"]
    # A symlink inside the root pointing outside must not become a way out.
    (tmp_path / "outside").mkdir()
    (tmp_path / "objs" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidInput):
        store.put("link/x", b"1")
    assert not (tmp_path / "outside" / "x").exists()
    store.delete("raw-pdfs/a.pdf")
    assert not (tmp_path / "objs" / "raw-pdfs").exists()  # empty folders pruned


@pytest.mark.s3
def test_s3_wrong_secret_is_store_unavailable_without_the_secret(s3_server):
    store = S3ObjectStore(s3_server.endpoint.split("://")[1], bucket="bunko-auth",
                          access_key=s3_server.access_key, secret_key="wrong-secret-XYZ")
    with pytest.raises(StoreUnavailable) as err:
        store.put("raw-pdfs/x.pdf", b"x")
    assert s3_server.endpoint.split("://")[1] in str(err.value)
    assert "wrong-secret-XYZ" not in str(err.value)


def test_s3_unreachable_is_store_unavailable_naming_endpoint():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3ObjectStore(f"127.0.0.1:{port}", bucket="b", access_key="a", secret_key="topsecret",
                          connect_timeout_s=1)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}") as err:
        store.ping()
    assert "topsecret" not in str(err.value)


@pytest.mark.parametrize("url", ["file://relative/path", "ftp://x", "s3://host:9000/bucket"])
def test_bad_urls_are_config_errors(settings_factory, url):
    with pytest.raises(ConfigError):
        open_object_store(settings_factory(object_store_url=url))


@pytest.mark.s3
def test_s3_put_file_uses_multipart_above_part_size(s3_server, tmp_path):
    store = S3ObjectStore(s3_server.endpoint.split("://")[1], bucket="bunko-multipart",
                          access_key=s3_server.access_key, secret_key=s3_server.secret_key,
                          part_size=5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    store.put_file("raw-pdfs/big.bin", src)
    # A multipart object's ETag is "<md5 of part md5s>-<part count>".
    etag = store._client.stat_object("bunko-multipart", "raw-pdfs/big.bin").etag
    assert etag is not None and etag.strip('"').endswith("-3")
    assert store.get("raw-pdfs/big.bin") == data
