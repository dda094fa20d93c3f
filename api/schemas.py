"""Request and response bodies of the REST API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RoleName = Literal["admin", "power_user", "user", "viewer"]
VisibilityName = Literal["private", "collection", "roles"]


class ErrorInfo(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorInfo


# --- auth ---------------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime


class MeOut(BaseModel):
    id: str
    name: str
    email: str
    role: str
    permissions: list[str]
    expires_at: int


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: RoleName = "user"
    email: str = Field(default="", max_length=254)
    name: str = Field(default="", max_length=128)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = None
    active: bool | None = None


# --- collections and documents ------------------------------------------------------------------


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    description: str = Field(default="", max_length=2000)
    config: dict[str, Any] | None = None
    visibility: VisibilityName = "collection"
    allowed_roles: list[RoleName] = Field(default_factory=list, max_length=4)


class CollectionOut(BaseModel):
    id: str
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    visibility: str
    allowed_roles: list[str]
    config: dict[str, Any]
    document_count: int | None = None
    created_at: datetime


class PiiPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["off", "flag", "redact"]


class PiiPolicyOut(BaseModel):
    collection: str
    previous: str
    policy: str
    requeued: int


class PiiPageOut(BaseModel):
    document_id: str
    filename: str
    page: int
    counts: dict[str, int]
    redacted: bool


class PiiReportOut(BaseModel):
    collection: str
    policy: str
    totals: dict[str, int]
    pages: list[PiiPageOut]


class ReindexOut(BaseModel):
    collection: str
    from_version: str
    to_version: str
    documents: int
    chunks: int
    requeued: int
    seconds: float
    changes: list[str]


class PageSummary(BaseModel):
    page: int
    source: str
    confidence: float
    char_count: int


class DocumentOut(BaseModel):
    id: str
    collection_id: str
    title: str
    filename: str
    sha256: str
    size_bytes: int
    page_count: int
    status: str
    stage: str
    progress: float
    error: str | None
    error_code: str | None
    chunk_count: int
    owner_id: str
    visibility: str
    allowed_roles: list[str]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    pages: list[PageSummary] | None = None


class DocumentList(BaseModel):
    items: list[DocumentOut]
    total: int
    limit: int
    offset: int


class PageBlockOut(BaseModel):
    text: str
    bbox: tuple[float, float, float, float] = Field(
        description="x0, y0, x1, y1 in PDF points (1/72 inch), origin at the page's top left")
    confidence: float
    kind: str
    redacted: bool = Field(default=False, description="held personal information that the collection's "
                           "PII policy redacted: its text is redacted and its box is black on the page image")


class PageOut(BaseModel):
    document_id: str
    page: int
    source: str
    confidence: float
    markdown: str
    width_pt: float
    height_pt: float
    blocks: list[PageBlockOut] = Field(default_factory=list,
                                       description="text-layer or OCR blocks with their boxes")


# --- queries ------------------------------------------------------------------------------------


class QueryFiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_ids: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=32)
    date_from: datetime | None = None
    date_to: datetime | None = None


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    collection: str = Field(default="default", min_length=1, max_length=63)
    filters: QueryFiltersIn | None = None
    use_cache: bool = True


class SourceOut(BaseModel):
    document_id: str
    title: str
    page: int
    snippet: str
    score: float
    refs: list[int] = Field(default_factory=list,
                            description="the context block numbers (the N of [文書N]) behind this source, "
                                        "cited ones first")


class AnswerOut(BaseModel):
    query_id: str
    answer: str
    sources: list[SourceOut]
    confidence: float
    processing_time_ms: float
    mode: str
    reranked: bool = False
    cached: bool = False


# --- audit --------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


class AuditList(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int
