"""bunko.api — the REST API (FastAPI), served by ``bunko serve`` (uvicorn, ``main:create_app``).

Routes (thin: each calls the core in ``bunko.*``; who may call what is ``bunko.access``):

- ``POST /api/v1/auth/login|refresh|logout``, ``GET /api/v1/auth/me`` — JWT access (15 min) and
  rotating refresh (7 days) tokens; see ``bunko.auth``.
- ``GET/POST /api/v1/users``, ``PATCH /api/v1/users/{id}`` — admins.
- ``GET/POST /api/v1/collections``, ``GET /api/v1/collections/{c}``.
- ``POST/GET /api/v1/collections/{c}/documents`` (multipart upload: ``file``, ``visibility``,
  ``allowed_roles``, ``tags``, ``title``), ``GET/DELETE /api/v1/documents/{id}``,
  ``POST .../reprocess``, ``GET .../pages/{n}``, ``.../thumbnail``, ``.../original``.
- ``POST /api/v1/query``, ``POST /api/v1/query/stream`` (SSE), ``WS /v1/stream`` (token in the
  first message), ``POST /v1/chat/completions`` and ``GET /v1/models`` (OpenAI-compatible; ``model``
  is a collection, the API key is an access token).
- ``GET /api/v1/audit`` — admins. ``/health``, ``/ready``, ``/metrics`` — no auth (keep ``/metrics``
  and ``/ready`` off the public ingress).

Errors everywhere: ``{"error": {"code", "message", "detail"}}``. Limits: 100 requests/min per
user (per address for login/refresh), 1 MiB JSON bodies, ``BUNKO_MAX_UPLOAD_BYTES`` uploads.
"""
