"""One exception hierarchy for the core.

Every error carries a message a user can act on, a stable machine-readable ``code`` and the HTTP
status the API maps it to. The edges translate these once: the API into ``{"error": {...}}`` with
``http_status``, the operator into a status condition, the CLI into an exit code and a message.
"""

from __future__ import annotations

from typing import Any


class BunkoError(Exception):
    code = "bunko_error"
    http_status = 500

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}


class ConfigError(BunkoError):
    code = "invalid_config"
    http_status = 500


class InvalidInput(BunkoError):
    code = "invalid_input"
    http_status = 422


class InvalidQuery(InvalidInput):
    code = "invalid_query"


# --- documents ---------------------------------------------------------------------------------


class InvalidDocument(BunkoError):
    """The uploaded file cannot become a document; nothing is stored for it."""

    code = "invalid_document"
    http_status = 422


class NotAPdf(InvalidDocument):
    code = "not_pdf"
    http_status = 415


class CorruptPdf(InvalidDocument):
    code = "corrupt_pdf"


class EncryptedPdf(InvalidDocument):
    code = "encrypted_pdf"


class EmptyPdf(InvalidDocument):
    code = "empty_pdf"


class DocumentTooLarge(InvalidDocument):
    code = "too_large"
    http_status = 413


class TooManyPages(InvalidDocument):
    code = "too_many_pages"
    http_status = 413


class UnsafeDocument(InvalidDocument):
    """A hostile or pathological PDF: it exceeded the sandbox's memory or pixel limits."""

    code = "unsafe"


class InfectedDocument(InvalidDocument):
    """The virus scanner (clamd) found a signature in the upload; nothing of it is stored."""

    code = "infected"


class ExtractionTimeout(InvalidDocument):
    code = "timeout"


class DuplicateDocument(BunkoError):
    code = "duplicate"
    http_status = 409

    def __init__(self, message: str, *, existing_id: str, detail: Any = None) -> None:
        super().__init__(message, detail=detail or {"existing_document_id": existing_id})
        self.existing_id = existing_id


# --- lookups and access ------------------------------------------------------------------------


class NotFound(BunkoError):
    code = "not_found"
    http_status = 404


class Conflict(BunkoError):
    code = "conflict"
    http_status = 409


class AuthenticationError(BunkoError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(BunkoError):
    code = "forbidden"
    http_status = 403


class RateLimited(BunkoError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after})
        self.retry_after = retry_after


# --- dependencies that can be down -------------------------------------------------------------


class Unavailable(BunkoError):
    """A dependency is down or unreachable; retrying later may succeed."""

    code = "unavailable"
    http_status = 503


class Busy(Unavailable):
    """Too much of one kind of work is running now; the same request later will be served."""

    code = "busy"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class ModelUnavailable(Unavailable):
    code = "model_unavailable"


class OcrFailed(BunkoError):
    code = "ocr_failed"
    http_status = 500
