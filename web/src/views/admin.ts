// Admin screens: users and roles, collections, system status, audit log.

import { getJson, request, sendJson } from "../api";
import { clear, formatDate, h } from "../dom";
import { errorText, t } from "../i18n";
import type { Ctx } from "../main";
import { histogram, parseMetrics, select, sumBy } from "../metrics";
import type { AuditList, CollectionOut, DocumentList, PiiReportOut, ReadyOut, UserOut } from "../types";

const ROLES = ["admin", "power_user", "user", "viewer"];
const STATUSES = ["pending", "processing", "completed", "failed"];

function table(headers: string[], testid: string): { table: HTMLTableElement; tbody: HTMLTableSectionElement } {
  const tbody = h("tbody", {});
  const el = h(
    "table",
    { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    tbody,
  );
  return { table: el, tbody };
}

// --- users ---------------------------------------------------------------------------------------

export function renderUsers(root: HTMLElement, ctx: Ctx): void {
  const error = h("p", { class: "error", role: "alert", "data-testid": "users-error" });
  const { table: tbl, tbody } = table(
    [t("users.username"), t("users.name"), t("users.email"), t("users.role"), t("users.active"), t("users.created")],
    "users-table",
  );

  const username = h("input", { id: "new-username", required: true, maxlength: 64, autocomplete: "off" });
  const password = h("input", { id: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const name = h("input", { id: "new-name", maxlength: 128 });
  const email = h("input", { id: "new-email", type: "email", maxlength: 254 });
  const role = h("select", { id: "new-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "user" }, t(`role.${r}`))));
  const formError = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card grid-form", "data-testid": "user-create" },
    h("h2", {}, t("users.create")),
    h("label", { for: "new-username" }, t("users.username")), username,
    h("label", { for: "new-password" }, t("users.password")), password,
    h("label", { for: "new-name" }, t("users.name")), name,
    h("label", { for: "new-email" }, t("users.email")), email,
    h("label", { for: "new-role" }, t("users.role")), role,
    formError,
    h("button", { type: "submit", class: "primary" }, t("users.createButton")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    formError.textContent = "";
    sendJson<UserOut>("POST", "/api/v1/users", {
      username: username.value.trim(),
      password: password.value,
      name: name.value.trim(),
      email: email.value.trim(),
      role: role.value,
    })
      .then(() => {
        form.reset();
        return load();
      })
      .catch((err: unknown) => {
        formError.textContent = errorText(err);
      });
  });

  root.append(h("h1", {}, t("nav.users")), h("section", { class: "card" }, error, h("div", { class: "table-wrap" }, tbl)), form);

  async function load(): Promise<void> {
    try {
      const users = await getJson<UserOut[]>("/api/v1/users");
      clear(tbody);
      for (const u of users) tbody.append(userRow(u));
      error.textContent = "";
    } catch (err) {
      error.textContent = errorText(err);
    }
  }

  function userRow(u: UserOut): HTMLTableRowElement {
    const self = u.id === ctx.me.id;
    const roleSel = h(
      "select",
      { "aria-label": t("users.roleOf", { name: u.username }), disabled: self, "data-testid": "user-role-select" },
      ROLES.map((r) => h("option", { value: r, selected: r === u.role }, t(`role.${r}`))),
    );
    const active = h("input", { type: "checkbox", checked: u.active, disabled: self, "aria-label": t("users.activeOf", { name: u.username }) });
    const patch = (body: Record<string, unknown>) =>
      sendJson<UserOut>("PATCH", `/api/v1/users/${encodeURIComponent(u.id)}`, body)
        .then(() => {
          error.textContent = "";
        })
        .catch((err: unknown) => {
          error.textContent = errorText(err);
          void load();
        });
    roleSel.addEventListener("change", () => void patch({ role: roleSel.value }));
    active.addEventListener("change", () => void patch({ active: active.checked }));
    return h(
      "tr",
      { "data-testid": "user-row" },
      h("td", {}, u.username),
      h("td", {}, u.name),
      h("td", {}, u.email),
      h("td", {}, roleSel),
      h("td", {}, active),
      h("td", { class: "muted" }, formatDate(u.created_at)),
    );
  }

  void load();
}

// --- collections ---------------------------------------------------------------------------------

async function statusCounts(collection: string): Promise<Record<string, number>> {
  const entries = await Promise.all(
    STATUSES.map(async (s) => {
      const list = await getJson<DocumentList>(`/api/v1/collections/${encodeURIComponent(collection)}/documents?status=${s}&limit=1`);
      return [s, list.total] as const;
    }),
  );
  return Object.fromEntries(entries);
}

export function renderCollections(root: HTMLElement, _ctx: Ctx): void {
  const error = h("p", { class: "error", role: "alert" });
  const { table: tbl, tbody } = table(
    [t("colls.name"), t("colls.description"), t("colls.visibility"), t("colls.model"), t("colls.documents"), t("colls.pii"), t("colls.created")],
    "collections-table",
  );
  const name = h("input", { id: "new-coll-name", required: true, pattern: "[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?", maxlength: 63 });
  const description = h("input", { id: "new-coll-desc", maxlength: 2000 });
  const visibility = h("select", { id: "new-coll-vis" }, ["collection", "private", "roles"].map((v) => h("option", { value: v }, t(`visibility.${v}`))));
  const pii = h("select", { id: "new-coll-pii" }, PII_POLICIES.map((v) => h("option", { value: v }, t(`pii.${v}`))));
  const formError = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card grid-form", "data-testid": "collection-create" },
    h("h2", {}, t("colls.create")),
    h("label", { for: "new-coll-name" }, t("colls.name")), name,
    h("p", { class: "muted small span" }, t("colls.nameHint")),
    h("label", { for: "new-coll-desc" }, t("colls.description")), description,
    h("label", { for: "new-coll-vis" }, t("colls.visibility")), visibility,
    h("label", { for: "new-coll-pii" }, t("colls.pii")), pii,
    formError,
    h("button", { type: "submit", class: "primary" }, t("colls.createButton")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    formError.textContent = "";
    sendJson<CollectionOut>("POST", "/api/v1/collections", {
      name: name.value.trim(),
      description: description.value,
      visibility: visibility.value,
      config: { pii: pii.value },
    })
      .then(() => {
        form.reset();
        return load();
      })
      .catch((err: unknown) => {
        formError.textContent = errorText(err);
      });
  });
  root.append(h("h1", {}, t("nav.collections")), h("section", { class: "card" }, error, h("div", { class: "table-wrap" }, tbl)), form);

  async function load(): Promise<void> {
    try {
      const list = await getJson<CollectionOut[]>("/api/v1/collections");
      const counts = await Promise.all(list.map((c) => statusCounts(c.name)));
      const reports = await Promise.all(list.map((c) => piiReport(c)));
      clear(tbody);
      list.forEach((c, i) => {
        const byStatus = h(
          "td",
          { class: "counts" },
          STATUSES.filter((s) => counts[i][s]).map((s) => h("span", { class: `badge status-${s}` }, `${t(`status.${s}`)} ${counts[i][s]}`)),
          Object.values(counts[i]).every((n) => !n) ? t("colls.none") : null,
        );
        tbody.append(
          h(
            "tr",
            { "data-testid": "collection-row" },
            h("td", {}, h("strong", {}, c.name)),
            h("td", {}, c.description),
            h("td", {}, t(`visibility.${c.visibility}`, {}, c.visibility)),
            h("td", { class: "small" }, `${c.embedding_model} (${c.embedding_dim})`),
            byStatus,
            piiCell(c, reports[i]),
            h("td", { class: "muted" }, formatDate(c.created_at)),
          ),
        );
      });
      error.textContent = "";
    } catch (err) {
      error.textContent = errorText(err);
    }
  }
  void load();
}

const PII_POLICIES = ["off", "flag", "redact"];

async function piiReport(c: CollectionOut): Promise<PiiReportOut | null> {
  const policy = c.config?.pii ?? "off";
  return policy === "off" ? null : getJson<PiiReportOut>(`/api/v1/collections/${encodeURIComponent(c.name)}/pii`);
}

// The policy, and what was found under it: kinds and counts (values never leave the PDF).
function piiCell(c: CollectionOut, report: PiiReportOut | null): HTMLElement {
  const policy = c.config?.pii ?? "off";
  const found = Object.entries(report?.totals ?? {}).map(([kind, n]) => h("span", { class: "badge" }, `${t(`pii.${kind}`, {}, kind)} ${n}`));
  return h("td", { class: "counts", "data-testid": "collection-pii" }, h("span", { class: `badge pii-${policy}` }, t(`pii.${policy}`, {}, policy)), found);
}

// --- system status -------------------------------------------------------------------------------

export function renderStatus(root: HTMLElement, _ctx: Ctx): () => void {
  const readyBox = h("section", { class: "card", "data-testid": "status-ready" }, h("h2", {}, t("status.ready")));
  const queueBox = h("section", { class: "card", "data-testid": "status-queue" }, h("h2", {}, t("status.queue")));
  const docsBox = h("section", { class: "card", "data-testid": "status-documents" }, h("h2", {}, t("status.documents")));
  const latencyBox = h("section", { class: "card", "data-testid": "status-latency" }, h("h2", {}, t("status.latency")));
  const refreshBtn = h("button", { type: "button", "data-testid": "status-refresh", onclick: () => void load() }, t("common.refresh"));
  root.append(h("div", { class: "row spread" }, h("h1", {}, t("nav.status")), refreshBtn), h("div", { class: "cards" }, readyBox, queueBox, docsBox, latencyBox));
  let timer: number | undefined;

  function fill(box: HTMLElement, ...content: (Node | string)[]): void {
    const head = box.firstElementChild as HTMLElement;
    clear(box);
    box.append(head, ...content);
  }

  function dl(entries: [string, string][], testid: string): HTMLDListElement {
    return h("dl", { class: "kv", "data-testid": testid }, entries.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  async function load(): Promise<void> {
    // /ready answers 503 with the same body when something is down: read it either way.
    const readyRes = await fetch("/ready").catch(() => null);
    if (readyRes) {
      try {
        const ready = (await readyRes.json()) as ReadyOut;
        const rows = Object.entries(ready.checks).map(([name, c]) =>
          h(
            "tr",
            { "data-check": name },
            h("th", { scope: "row" }, t(`check.${name}`, {}, name)),
            h("td", {}, h("span", { class: `badge ${c.status === "ok" ? "ok" : "down"}` }, c.status === "ok" ? t("status.ok") : t("status.down"))),
            h("td", { class: "small" }, c.backend ?? c.error ?? ""),
            h("td", { class: "num small" }, c.latency_ms !== undefined ? `${c.latency_ms} ms` : ""),
          ),
        );
        fill(
          readyBox,
          h("p", { class: `overall ${ready.status === "ready" ? "ok" : "down"}`, "data-testid": "ready-overall" }, ready.status === "ready" ? t("status.allReady") : t("status.notReady")),
          h("table", { class: "compact" }, h("tbody", {}, rows)),
        );
      } catch (err) {
        fill(readyBox, h("p", { class: "error" }, errorText(err)));
      }
    }
    try {
      const text = await (await request("/metrics")).text();
      const samples = parseMetrics(text);
      const queue = sumBy(samples, "bunko_queue_depth", "status");
      fill(queueBox, dl([...queue.entries()].map(([s, n]) => [t(`job.${s}`, {}, s), String(n)]), "queue-depth"), queue.size ? "" : t("status.noData"));
      const lat = histogram(samples, "rag_query_duration_seconds", { stage: "total" });
      const queries = sumBy(samples, "rag_queries_total", "mode");
      const sizes = select(samples, "milvus_collection_size");
      fill(
        latencyBox,
        lat
          ? dl(
              [
                [t("status.queries"), String(lat.count)],
                [t("status.mean"), `${Math.round(lat.mean * 1000)} ms`],
                [t("status.p50"), `${Math.round(lat.p50 * 1000)} ms`],
                [t("status.p95"), `${Math.round(lat.p95 * 1000)} ms`],
                ...[...queries.entries()].map(([m, n]): [string, string] => [t(`mode.${m}`, {}, m), String(n)]),
              ],
              "latency",
            )
          : h("p", { class: "muted", "data-testid": "latency" }, t("status.noQueries")),
        sizes.length ? dl(sizes.map((s) => [t("status.chunks", { name: s.labels.collection ?? "" }), String(s.value)]), "collection-sizes") : "",
      );
    } catch (err) {
      fill(queueBox, h("p", { class: "error" }, errorText(err)));
    }
    try {
      const list = await getJson<CollectionOut[]>("/api/v1/collections");
      const totals: Record<string, number> = Object.fromEntries(STATUSES.map((s) => [s, 0]));
      for (const counts of await Promise.all(list.map((c) => statusCounts(c.name)))) {
        for (const s of STATUSES) totals[s] += counts[s] ?? 0;
      }
      fill(docsBox, dl(STATUSES.map((s) => [t(`status.${s}`), String(totals[s])]), "documents-by-status"));
    } catch (err) {
      fill(docsBox, h("p", { class: "error" }, errorText(err)));
    }
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 15000);
  }
  void load();
  return () => window.clearTimeout(timer);
}

// --- audit log -----------------------------------------------------------------------------------

export function renderAudit(root: HTMLElement, _ctx: Ctx): void {
  const PAGE = 50;
  let offset = 0;
  const action = h("input", { id: "audit-action", maxlength: 64, placeholder: "login, upload, query…" });
  const actor = h("input", { id: "audit-actor", maxlength: 64 });
  const error = h("p", { class: "error", role: "alert" });
  const { table: tbl, tbody } = table(
    [t("audit.at"), t("audit.actor"), t("audit.action"), t("audit.target"), t("audit.detail"), t("audit.ip")],
    "audit-table",
  );
  const info = h("span", { class: "muted", "data-testid": "audit-info" });
  const prev = h("button", { type: "button" }, t("common.prev"));
  const next = h("button", { type: "button" }, t("common.next"));
  const form = h(
    "form",
    { class: "row filters" },
    h("label", { for: "audit-action" }, t("audit.action")), action,
    h("label", { for: "audit-actor" }, t("audit.actor")), actor,
    h("button", { type: "submit" }, t("common.filter")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    offset = 0;
    void load();
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    void load();
  });
  next.addEventListener("click", () => {
    offset += PAGE;
    void load();
  });
  root.append(h("h1", {}, t("nav.audit")), h("section", { class: "card" }, form, error, h("div", { class: "table-wrap" }, tbl), h("div", { class: "row" }, prev, info, next)));

  async function load(): Promise<void> {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (action.value.trim()) q.set("action", action.value.trim());
    if (actor.value.trim()) q.set("actor", actor.value.trim());
    try {
      const list = await getJson<AuditList>(`/api/v1/audit?${q}`);
      clear(tbody);
      for (const e of list.items) {
        tbody.append(
          h(
            "tr",
            { "data-testid": "audit-row" },
            h("td", { class: "muted nowrap" }, formatDate(e.at)),
            h("td", {}, e.actor),
            h("td", {}, h("code", {}, e.action)),
            h("td", { class: "small" }, e.target),
            h("td", { class: "small detail" }, Object.keys(e.detail ?? {}).length ? JSON.stringify(e.detail) : ""),
            h("td", { class: "small" }, e.ip),
          ),
        );
      }
      info.textContent = t("audit.range", { from: list.total ? offset + 1 : 0, to: offset + list.items.length, total: list.total });
      prev.disabled = offset === 0;
      next.disabled = offset + list.items.length >= list.total;
      error.textContent = "";
    } catch (err) {
      error.textContent = errorText(err);
    }
  }
  void load();
}
