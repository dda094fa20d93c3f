// Documents: upload (drag and drop, several files, progress and errors per file), the list with
// live status, delete, reprocess, filter by collection and status.

import { ApiError, freshToken, getJson, refreshTokens, sendJson, uploadPdf } from "../api";
import { append, clear, formatBytes, formatDate, h } from "../dom";
import { errorText, t } from "../i18n";
import type { Ctx } from "../main";
import type { CollectionOut, DocumentList, DocumentOut } from "../types";

const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 10000;
const ALL = "";

export function renderDocuments(root: HTMLElement, ctx: Ctx): () => void {
  let collections: CollectionOut[] = [];
  let timer: number | undefined;
  let stopped = false;
  let uploading = 0;
  let rowOrder = "";
  const rows = new Map<string, { tr: HTMLTableRowElement; update: (d: DocumentOut) => void }>();

  const collectionSel = h("select", { id: "docs-collection", "data-testid": "docs-collection" }, h("option", { value: ALL }, t("docs.allCollections")));
  const statusSel = h(
    "select",
    { id: "docs-status", "data-testid": "docs-status" },
    h("option", { value: "" }, t("docs.allStatuses")),
    ["pending", "processing", "completed", "failed"].map((s) => h("option", { value: s }, t(`status.${s}`))),
  );
  const listError = h("p", { class: "error", role: "alert" });
  const tbody = h("tbody", { "data-testid": "docs-rows" });
  const empty = h("p", { class: "empty", hidden: true, "data-testid": "docs-empty" }, t("docs.empty"));
  const table = h(
    "table",
    { class: "docs", "data-testid": "docs-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        [t("docs.col.title"), t("docs.col.collection"), t("docs.col.pages"), t("docs.col.status"), t("docs.col.updated"), t("docs.col.actions")].map((c) =>
          h("th", { scope: "col" }, c),
        ),
      ),
    ),
    tbody,
  );

  append(root, [
    h("h1", {}, t("docs.title")),
    ctx.can("documents:upload") ? uploadPanel() : null,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "row filters" },
        h("label", { for: "docs-collection" }, t("docs.filterCollection")),
        collectionSel,
        h("label", { for: "docs-status" }, t("docs.filterStatus")),
        statusSel,
      ),
      listError,
      h("div", { class: "table-wrap" }, table),
      empty,
    ),
  ]);

  collectionSel.addEventListener("change", () => void refresh(true));
  statusSel.addEventListener("change", () => void refresh(true));

  getJson<CollectionOut[]>("/api/v1/collections")
    .then((list) => {
      collections = list;
      for (const c of list) collectionSel.append(h("option", { value: c.name }, c.name));
      const target = root.querySelector<HTMLSelectElement>("#upload-collection");
      if (target) {
        for (const c of list) target.append(h("option", { value: c.name }, c.name));
      }
      void refresh(true);
    })
    .catch((err: unknown) => {
      listError.textContent = errorText(err);
    });

  function collectionName(id: string): string {
    return collections.find((c) => c.id === id)?.name ?? id;
  }

  async function fetchDocuments(): Promise<DocumentOut[]> {
    const names = collectionSel.value ? [collectionSel.value] : collections.map((c) => c.name);
    const status = statusSel.value ? `&status=${statusSel.value}` : "";
    const lists = await Promise.all(
      names.map((n) => getJson<DocumentList>(`/api/v1/collections/${encodeURIComponent(n)}/documents?limit=200${status}`)),
    );
    return lists
      .flatMap((l) => l.items)
      .sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  async function refresh(reschedule = false): Promise<void> {
    if (stopped) return;
    if (reschedule) window.clearTimeout(timer);
    let busy = uploading > 0;
    try {
      const docs = await fetchDocuments();
      if (stopped) return;
      listError.textContent = "";
      showRows(docs);
      busy ||= docs.some((d) => d.status === "pending" || d.status === "processing");
    } catch (err) {
      listError.textContent = errorText(err);
    }
    window.clearTimeout(timer);
    if (!stopped) timer = window.setTimeout(() => void refresh(), busy ? FAST_POLL_MS : SLOW_POLL_MS);
  }

  function showRows(docs: DocumentOut[]): void {
    const order = docs.map((d) => d.id).join(",");
    if (order !== rowOrder) {
      // The set changed: rebuild. Otherwise rows are updated in place so focus stays put.
      rowOrder = order;
      clear(tbody);
      const keep = new Set(docs.map((d) => d.id));
      for (const id of rows.keys()) if (!keep.has(id)) rows.delete(id);
      for (const d of docs) {
        let row = rows.get(d.id);
        if (!row) {
          row = documentRow(d);
          rows.set(d.id, row);
        }
        tbody.append(row.tr);
      }
    }
    for (const d of docs) rows.get(d.id)?.update(d);
    empty.hidden = docs.length > 0;
    table.hidden = docs.length === 0;
  }

  function canManage(d: DocumentOut): boolean {
    return ctx.can("documents:manage_all") || (ctx.can("documents:manage_own") && d.owner_id === ctx.me.id);
  }

  function documentRow(initial: DocumentOut): { tr: HTMLTableRowElement; update: (d: DocumentOut) => void } {
    const title = h("td", { class: "doc-title" });
    const coll = h("td", { "data-label": t("docs.col.collection") });
    const pages = h("td", { class: "num", "data-label": t("docs.col.pages") });
    const status = h("td", { "data-testid": "doc-status-cell" });
    const updated = h("td", { class: "muted" });
    const actions = h("td", { class: "actions" });
    const tr = h("tr", { "data-testid": "doc-row", "data-document-id": initial.id }, title, coll, pages, status, updated, actions);
    let current = initial;

    const reprocess = h("button", { type: "button", "data-testid": "doc-reprocess" }, t("docs.reprocess"));
    const remove = h("button", { type: "button", class: "danger", "data-testid": "doc-delete" }, t("docs.delete"));
    const actionError = h("span", { class: "error", role: "alert" });
    reprocess.addEventListener("click", () => {
      reprocess.disabled = true;
      sendJson<DocumentOut>("POST", `/api/v1/documents/${current.id}/reprocess`)
        .then((d) => {
          update(d);
          void refresh(true);
        })
        .catch((err: unknown) => {
          actionError.textContent = errorText(err);
        })
        .finally(() => {
          reprocess.disabled = false;
        });
    });
    remove.addEventListener("click", () => {
      if (!window.confirm(t("docs.confirmDelete", { name: current.title || current.filename }))) return;
      remove.disabled = true;
      sendJson("DELETE", `/api/v1/documents/${current.id}`)
        .then(() => refresh(true))
        .catch((err: unknown) => {
          actionError.textContent = errorText(err);
          remove.disabled = false;
        });
    });

    function update(d: DocumentOut): void {
      current = d;
      tr.dataset.status = d.status;
      clear(title);
      title.append(h("span", { class: "title-text" }, d.title || d.filename), h("span", { class: "muted small" }, d.filename));
      coll.textContent = collectionName(d.collection_id);
      pages.textContent = d.page_count ? String(d.page_count) : "—";
      clear(status);
      const cell = h("div", { class: "status-cell" });
      status.append(cell);
      cell.append(h("span", { class: `badge status-${d.status}`, "data-testid": "doc-status" }, t(`status.${d.status}`)));
      if (d.status === "processing" || d.status === "pending") {
        const pct = Math.round((d.progress || 0) * 100);
        cell.append(
          h("span", { class: "stage small" }, d.stage ? t(`stage.${d.stage}`, {}, d.stage) : ""),
          h("progress", { max: 1, value: d.progress || 0, "aria-label": t("docs.progress", { pct }) }),
          h("span", { class: "small" }, `${pct}%`),
        );
      }
      if (d.status === "failed" && d.error) {
        cell.append(h("span", { class: "error small", "data-testid": "doc-error" }, d.error));
      }
      updated.textContent = formatDate(d.updated_at);
      clear(actions);
      if (canManage(d)) {
        if (d.status !== "processing") actions.append(reprocess);
        actions.append(remove);
      }
      actions.append(actionError);
    }

    update(initial);
    return { tr, update };
  }

  function uploadPanel(): HTMLElement {
    const input = h("input", { type: "file", id: "upload-input", multiple: true, accept: "application/pdf,.pdf", hidden: true, "data-testid": "upload-input" });
    const target = h("select", { id: "upload-collection", "data-testid": "upload-collection" });
    const list = h("ul", { class: "uploads", "data-testid": "upload-list" });
    const zone = h(
      "div",
      { class: "dropzone", tabindex: "0", role: "button", "aria-describedby": "dropzone-hint", "data-testid": "dropzone" },
      h("strong", {}, t("upload.drop")),
      h("span", { id: "dropzone-hint", class: "muted" }, t("upload.hint")),
    );
    zone.addEventListener("click", () => input.click());
    zone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        input.click();
      }
    });
    zone.addEventListener("dragover", (e) => {
      e.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer?.files.length) enqueue([...e.dataTransfer.files]);
    });
    input.addEventListener("change", () => {
      if (input.files?.length) enqueue([...input.files]);
      input.value = "";
    });

    let queue: Promise<void> = Promise.resolve();
    function enqueue(files: File[]): void {
      for (const file of files) {
        const item = uploadItem(file);
        list.prepend(item.li);
        uploading++;
        queue = queue.then(() => send(file, target.value || "default", item)).finally(() => {
          uploading--;
        });
      }
      void refresh(true);
    }

    return h(
      "section",
      { class: "card upload", "data-testid": "upload-panel", "aria-label": t("upload.title") },
      h("h2", {}, t("upload.title")),
      h("div", { class: "row" }, h("label", { for: "upload-collection" }, t("upload.collection")), target),
      zone,
      input,
      list,
    );
  }

  interface UploadItem {
    li: HTMLLIElement;
    progress: HTMLProgressElement;
    state: HTMLElement;
    error: HTMLElement;
  }

  function uploadItem(file: File): UploadItem {
    const progress = h("progress", { max: 1, value: 0, "aria-label": file.name });
    const state = h("span", { class: "state", "data-testid": "upload-state" }, t("upload.waiting"));
    const error = h("p", { class: "error", role: "alert", "data-testid": "upload-error" });
    const li = h(
      "li",
      { class: "upload-item", "data-testid": "upload-item", "data-filename": file.name },
      h("span", { class: "file-name" }, file.name),
      h("span", { class: "muted small" }, formatBytes(file.size)),
      progress,
      state,
      error,
    );
    return { li, progress, state, error };
  }

  async function send(file: File, collection: string, item: UploadItem): Promise<void> {
    if (stopped) return;
    item.state.textContent = t("upload.sending");
    const attempt = async () => {
      const token = await freshToken();
      return uploadPdf(collection, file, token, (f) => {
        item.progress.value = f;
      }).promise;
    };
    try {
      let doc: DocumentOut;
      try {
        doc = await attempt();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401 && (await refreshTokens()))) throw err;
        doc = await attempt();
      }
      item.progress.value = 1;
      item.li.classList.add("ok");
      item.state.textContent = t("upload.done", { status: t(`status.${doc.status}`) });
    } catch (err) {
      item.li.classList.add("failed");
      item.progress.hidden = true;
      item.state.textContent = t("upload.failed");
      item.error.textContent = errorText(err);
    }
    void refresh(true);
  }

  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
