// Shapes of the REST API's bodies (bunko.api.schemas), as far as the page reads them.

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

export interface Me {
  id: string;
  name: string;
  email: string;
  role: string;
  permissions: string[];
  expires_at: number;
}

export interface UserOut {
  id: string;
  username: string;
  email: string;
  name: string;
  role: string;
  active: boolean;
  created_at: string;
}

export interface CollectionOut {
  id: string;
  name: string;
  description: string;
  embedding_model: string;
  embedding_dim: number;
  visibility: string;
  allowed_roles: string[];
  config: { pii?: string; [key: string]: unknown };
  document_count: number | null;
  created_at: string;
}

export interface PiiReportOut {
  collection: string;
  policy: string;
  totals: Record<string, number>;
  pages: { document_id: string; filename: string; page: number; counts: Record<string, number>; redacted: boolean }[];
}

export type DocStatus = "pending" | "processing" | "completed" | "failed";

export interface DocumentOut {
  id: string;
  collection_id: string;
  title: string;
  filename: string;
  size_bytes: number;
  page_count: number;
  status: DocStatus;
  stage: string;
  progress: number;
  error: string | null;
  error_code: string | null;
  chunk_count: number;
  owner_id: string;
  visibility: string;
  created_at: string;
  updated_at: string;
}

export interface DocumentList {
  items: DocumentOut[];
  total: number;
  limit: number;
  offset: number;
}

export interface PageBlock {
  text: string;
  bbox: [number, number, number, number];
  confidence?: number;
  kind?: string;
}

export interface PageOut {
  document_id: string;
  page: number;
  source: string;
  confidence: number;
  markdown: string;
  width_pt: number;
  height_pt: number;
  blocks?: PageBlock[];
}

export interface SourceOut {
  document_id: string;
  title: string;
  page: number;
  snippet: string;
  score: number;
  /** Context block numbers ([文書N]) this source stands for, when the api sends them. */
  refs?: number[];
}

export interface AnswerOut {
  query_id: string;
  answer: string;
  sources: SourceOut[];
  confidence: number;
  processing_time_ms: number;
  mode: string;
  reranked?: boolean;
  cached?: boolean;
}

export type StreamEvent =
  | { type: "token"; text: string }
  | { type: "sources"; sources: SourceOut[] }
  | { type: "done"; answer: AnswerOut }
  | { type: "error"; error: { code: string; message: string; detail?: unknown } };

export interface AuditOut {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
  ip: string;
}

export interface AuditList {
  items: AuditOut[];
  total: number;
  limit: number;
  offset: number;
}

export interface ReadyCheck {
  status: string;
  backend?: string;
  latency_ms?: number;
  error?: string;
}

export interface ReadyOut {
  status: string;
  checks: Record<string, ReadyCheck>;
}
