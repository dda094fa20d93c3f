"""Validation refuses each kind of bad file with its own error, after a sandboxed parse."""

import hashlib

import pytest

from bunko import samples as S
from bunko.errors import (
    CorruptPdf,
    DocumentTooLarge,
    EmptyPdf,
    EncryptedPdf,
    NotAPdf,
    TooManyPages,
)
from bunko.ingest.validate import validate_pdf
from bunko.settings import Settings

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pages": 2000}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return S.make_invalid_samples(tmp_path_factory.mktemp("invalid"))


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None)


def test_a_good_pdf_is_described(samples, settings):
    path = samples["born_digital.pdf"]
    info = validate_pdf(path, **LIMITS, sandbox=settings.sandbox)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.size_bytes == path.stat().st_size
    assert info.page_count == S.BORN_DIGITAL_PAGES
    assert info.title == S.BORN_DIGITAL_TITLE


def test_title_falls_back_to_the_file_name(bad, settings):
    info = validate_pdf(bad["huge_page"], **LIMITS, sandbox=settings.sandbox)
    assert info.title == "huge_page"


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("corrupt", CorruptPdf, "damaged"),
        ("encrypted", EncryptedPdf, "password"),
        ("empty", EmptyPdf, "empty"),
        ("no_pages", EmptyPdf, "no readable pages"),
        ("not_pdf", NotAPdf, "not a PDF"),
    ],
)
def test_bad_files_are_refused_with_their_own_error(bad, settings, name, error, words):
    with pytest.raises(error) as info:
        validate_pdf(bad[name], **LIMITS, sandbox=settings.sandbox)
    assert type(info.value) is error
    assert words.lower() in info.value.message.lower()


def test_oversized_file_is_refused_before_it_is_read(samples, settings):
    with pytest.raises(DocumentTooLarge) as info:
        validate_pdf(samples["scanned.pdf"], max_bytes=10_000, max_pages=10, sandbox=settings.sandbox)
    assert info.value.http_status == 413
    assert "limit" in info.value.message


def test_too_many_pages_is_refused(samples, settings):
    with pytest.raises(TooManyPages) as info:
        validate_pdf(samples["born_digital.pdf"], max_bytes=10**8, max_pages=2, sandbox=settings.sandbox)
    assert f"{S.BORN_DIGITAL_PAGES} pages" in info.value.message


def test_magic_may_sit_after_leading_junk(samples, settings, tmp_path):
    shifted = tmp_path / "shifted.pdf"
    shifted.write_bytes(b"\n" * 100 + samples["born_digital.pdf"].read_bytes())
    assert validate_pdf(shifted, **LIMITS, sandbox=settings.sandbox).page_count == S.BORN_DIGITAL_PAGES


def test_a_pdf_with_only_an_owner_password_is_accepted(bad, settings):
    """Every reader opens a PDF whose only password is the owner's (copy/print restrictions):
    it is validated like any other, not refused as encrypted."""
    info = validate_pdf(bad["encrypted_no_password"], **LIMITS, sandbox=settings.sandbox)
    assert info.page_count == 1
