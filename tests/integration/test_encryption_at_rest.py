"""Objects at rest: sealed with AES-256-GCM in the embedded default (bunko.store.encryption), or
encrypted by the S3 service (SSE-S3 on SeaweedFS). The bytes on disk hold no sentence of an
ingested document; Bunko reads every one back. A control run without a key shows the same search
finds the sentence, so the check can fail."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bunko.errors import ConfigError, StoreUnavailable
from bunko.samples import BORN_DIGITAL_SECTIONS, make_born_digital
from bunko.settings import Settings
from bunko.store.encryption import EncryptedObjectStore, ObjectKeys, keys_from_settings, seal
from bunko.store.objects import DirectoryObjectStore, open_object_store
from tests.support.api import open_api, wait_for_status

SENTENCE = BORN_DIGITAL_SECTIONS[0][1][0]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("encrypted", [False, True], ids=["control-plain", "encrypted"])
def test_no_sentence_of_an_ingested_document_is_on_disk_and_bunko_reads_it_back(
    request, tmp_path_factory, tmp_path, encrypted
):
    pdf = make_born_digital(tmp_path / "report.pdf")
    overrides = {"encryption_key": _key()} if encrypted else {}
    with open_api(request, tmp_path_factory, "embedded", start_worker=True, **overrides) as api:
        user = api.add_user("owner", "user")
        r = api.upload(user, pdf)
        assert r.status_code == 201, r.text
        doc_id = r.json()["id"]
        assert wait_for_status(api, user, doc_id)["status"] == "completed"
        objects = api.rt.settings.data_dir / "objects"
        on_disk = [p for p in objects.rglob("*") if p.is_file()]
        assert on_disk, "nothing was stored"
        holding = _files_holding(objects, SENTENCE.encode("utf-8")) + _files_holding(objects, b"%PDF-")
        if encrypted:
            assert holding == []
            assert all(p.read_bytes().startswith(b"BKE1") for p in on_disk)
        else:
            assert holding, "the control run should find the sentence or the PDF in the plain objects"
        # Through Bunko: the page's text, and the original file byte for byte.
        page = api.client.get(f"/api/v1/documents/{doc_id}/pages/1", headers=user.headers)
        assert page.status_code == 200 and SENTENCE in page.json()["markdown"]
        original = api.client.get(f"/api/v1/documents/{doc_id}/original", headers=user.headers)
        assert original.status_code == 200 and original.content == pdf.read_bytes()


def test_a_sealed_object_opens_only_under_its_name_and_a_configured_key(tmp_path):
    keys = ObjectKeys(os.urandom(32))
    store = EncryptedObjectStore(DirectoryObjectStore(tmp_path), keys)
    store.put("a/one", "秘密の文".encode())
    assert store.get("a/one").decode() == "秘密の文"
    # Moved to another name: the associated data no longer matches.
    (tmp_path / "a" / "two").write_bytes((tmp_path / "a" / "one").read_bytes())
    with pytest.raises(StoreUnavailable, match="integrity check"):
        store.get("a/two")
    # Rotated without the old key: says which setting holds it.
    rotated = EncryptedObjectStore(DirectoryObjectStore(tmp_path), ObjectKeys(os.urandom(32)))
    with pytest.raises(ConfigError, match="BUNKO_ENCRYPTION_PREVIOUS_KEYS"):
        rotated.get("a/one")
    # With the old key among the previous ones, it opens; reseal moves it to the new key.
    both = EncryptedObjectStore(DirectoryObjectStore(tmp_path), ObjectKeys(rotated.keys.current, (keys.current,)))
    assert both.get("a/one").decode() == "秘密の文"
    (tmp_path / "a" / "two").unlink()
    DirectoryObjectStore(tmp_path).put("b/plain", b"written before encryption")
    assert both.reseal() == 2
    assert rotated.get("a/one").decode() == "秘密の文" and rotated.get("b/plain") == b"written before encryption"
    assert seal(keys, "x", b"y") != seal(keys, "x", b"y")  # a fresh nonce each time


@pytest.mark.parametrize("bad, message", [
    ({"encryption_key": "c2hvcnQ="}, "32 random bytes in base64"),
    ({"encryption_key_file": "/nonexistent/key"}, "cannot be read"),
    ({"encryption_previous_keys": ["c2hvcnQ="]}, "without BUNKO_ENCRYPTION_KEY"),
])
def test_a_bad_key_setting_says_how_to_make_one(tmp_path, bad, message):
    settings = Settings(data_dir=tmp_path, **bad)
    with pytest.raises(ConfigError, match=message) as info:
        keys_from_settings(settings)
    assert "c2hvcnQ" not in info.value.message  # the key is not repeated back


def test_the_reseal_command_rewrites_objects_under_a_new_key(tmp_path):
    old, new = _key(), _key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    env.update(BUNKO_DATA_DIR=str(tmp_path), BUNKO_OBJECT_STORE_URL=f"file://{tmp_path / 'objects'}")
    old_store = open_object_store(Settings(data_dir=tmp_path, object_store_url=f"file://{tmp_path / 'objects'}",
                                           encryption_key=old))
    old_store.put("raw/doc.pdf", b"%PDF-1.7 secret")
    cmd = [sys.executable, "-c", "from bunko.cli import main; main()", "reseal-objects"]
    out = subprocess.run(cmd, env={**env, "BUNKO_ENCRYPTION_KEY": new, "BUNKO_ENCRYPTION_PREVIOUS_KEYS": f'["{old}"]'},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "1 objects resealed" in out.stdout, out.stdout + out.stderr
    new_only = open_object_store(Settings(data_dir=tmp_path, object_store_url=f"file://{tmp_path / 'objects'}",
                                          encryption_key=new))
    assert new_only.get("raw/doc.pdf") == b"%PDF-1.7 secret"
    plain = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "not encrypted" in plain.stderr and "Traceback" not in plain.stderr


@pytest.mark.s3
def test_s3_server_side_encryption_on_seaweedfs(s3_server):
    # SeaweedFS is shared by the session (other tests store this sample's sentence in plain
    # buckets): each write here carries a marker of its own, and the search looks for that.
    secret = f"{uuid.uuid4().hex} {SENTENCE}".encode()
    settings = Settings(**s3_server.settings_overrides(), s3_sse="SSE-S3")
    store = open_object_store(settings)
    store.put("sse/one.txt", secret)
    assert store.get("sse/one.txt") == secret
    stat = store._client.stat_object(settings.s3_bucket, "sse/one.txt")  # type: ignore[attr-defined]
    assert stat.metadata.get("x-amz-server-side-encryption") == "AES256"
    assert _files_holding(s3_server.data_dir, secret) == []
    # The same write without SSE lands in SeaweedFS's volume files as it is: the check can fail.
    plain = open_object_store(Settings(**{**s3_server.settings_overrides(), "s3_bucket": settings.s3_bucket}))
    visible = f"{uuid.uuid4().hex} {SENTENCE}".encode()
    plain.put("sse/plain.txt", visible)
    assert _files_holding(s3_server.data_dir, visible)


def test_sse_kms_needs_its_key_id_and_tls():
    with pytest.raises(ConfigError, match="BUNKO_S3_SSE_KMS_KEY_ID"):
        open_object_store(Settings(object_store_url="s3://127.0.0.1:9", s3_sse="SSE-KMS"))
    with pytest.raises(ConfigError, match="TLS"):
        open_object_store(Settings(object_store_url="s3://127.0.0.1:9", s3_sse="SSE-KMS", s3_sse_kms_key_id="k1"))
