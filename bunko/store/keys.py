"""Every object-store key Bunko writes, in one place.

Three top-level prefixes: ``raw-pdfs/`` (the uploads, one folder per collection),
``ocr-outputs/`` (per-document page outputs and OCR cache) and ``thumbnails/`` (first-page
thumbnails and rendered page images). Everything a document owns lies under keys derived from its
id (and its collection's), so deleting a document or a collection is a handful of prefix deletes.
"""

from __future__ import annotations

RAW_PDFS = "raw-pdfs/"
OCR_OUTPUTS = "ocr-outputs/"
THUMBNAILS = "thumbnails/"
def collection_prefix(collection_id: str) -> str:
    """The collection's uploads (and its marker): deleted with the collection."""
    return f"{RAW_PDFS}{collection_id}/"


def collection_marker(collection_id: str) -> str:
    """Names the collection that owns ``collection_prefix`` (for an operator looking at a bucket)."""
    return f"{collection_prefix(collection_id)}.collection.json"


def raw_pdf(collection_id: str, document_id: str) -> str:
    return f"{collection_prefix(collection_id)}{document_id}.pdf"


def page_outputs(document_id: str) -> str:
    """The document's page Markdown and blocks (``p0001.md``, ``p0001.json``) and its OCR cache."""
    return f"{OCR_OUTPUTS}documents/{document_id}/"


def page_markdown(document_id: str, page_no: int) -> str:
    return f"{page_outputs(document_id)}p{page_no:04d}.md"


def page_blocks(document_id: str, page_no: int) -> str:
    return f"{page_outputs(document_id)}p{page_no:04d}.json"


def ocr_cache_prefix(document_id: str) -> str:
    """The document's own OCR cache: inside its page outputs, so deleting it deletes the cache. A
    cache shared by file hash across users would tell one user, by how fast their upload finished,
    that someone else had sent the same file."""
    return f"{page_outputs(document_id)}ocr/"


def file_ocr_cache_prefix(sha256: str) -> str:
    """The OCR cache of a file outside any document (tools and benchmarks): its hash."""
    return f"{OCR_OUTPUTS}{sha256}/"


def ocr_result(prefix: str, page_no: int, engine: str, version: str, dpi: int) -> str:
    return f"{prefix}p{page_no:04d}-{engine}-{version}-{dpi}.json"


def thumbnail(document_id: str) -> str:
    return f"{THUMBNAILS}{document_id}.png"


def page_images(document_id: str) -> str:
    return f"{THUMBNAILS}pages/{document_id}/"


def page_image(document_id: str, page_no: int) -> str:
    return f"{page_images(document_id)}{page_no}.png"


def document_objects(collection_id: str, document_id: str) -> tuple[list[str], list[str]]:
    """(keys, prefixes) of everything a document owns in the object store."""
    return ([raw_pdf(collection_id, document_id), thumbnail(document_id)],
            [page_outputs(document_id), page_images(document_id)])
