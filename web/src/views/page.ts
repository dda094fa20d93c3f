// The source viewer: a cited source's card (title, page, snippet) with the page itself — its image
// when the api renders one (else the document's thumbnail for page 1), the OCR / layout boxes of
// the cited passage highlighted over it, and the page text with the passage marked.

import { ApiError, blobUrl, getJson } from "../api";
import { append, clear, h } from "../dom";
import { blockMatches, findRanges } from "../highlight";
import { errorText, t } from "../i18n";
import type { PageBlock, PageOut, SourceOut } from "../types";

const THUMB_W = 200;
const THUMB_H = 300;

let dialog: HTMLDialogElement | null = null;
const objectUrls: string[] = [];

function releaseUrls(): void {
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
}

function ensureDialog(): HTMLDialogElement {
  if (dialog && document.body.contains(dialog)) return dialog;
  dialog = h("dialog", { class: "viewer", "data-testid": "source-viewer", "aria-labelledby": "viewer-title" });
  dialog.addEventListener("close", releaseUrls);
  // A click on the backdrop (outside the dialog's box) closes it, as Esc does.
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) dialog?.close();
  });
  document.body.append(dialog);
  return dialog;
}

export function sourceLabel(source: SourceOut): string {
  return t("source.page", { page: source.page });
}

export function openSourceViewer(source: SourceOut, citeLabel: string): void {
  const dlg = ensureDialog();
  releaseUrls();
  clear(dlg);
  const body = h("div", { class: "viewer-body", "data-testid": "viewer-body" }, h("p", { class: "muted" }, t("common.loading")));
  append(dlg, [
    h(
      "header",
      { class: "viewer-head" },
      h(
        "div",
        {},
        h("h2", { id: "viewer-title" }, citeLabel ? `${citeLabel} ` : "", source.title),
        h("p", { class: "muted" }, sourceLabel(source)),
      ),
      h("button", { type: "button", class: "close", "data-testid": "viewer-close", onclick: () => dlg.close() }, t("common.close")),
    ),
    h("blockquote", { class: "snippet", "data-testid": "viewer-snippet" }, source.snippet),
    body,
  ]);
  dlg.showModal();
  (dlg.querySelector(".close") as HTMLButtonElement).focus();
  void loadPage(source, body);
}

async function pageImage(source: SourceOut): Promise<{ url: string; thumbnail: boolean } | null> {
  const base = `/api/v1/documents/${encodeURIComponent(source.document_id)}`;
  try {
    return { url: await blobUrl(`${base}/pages/${source.page}/image`), thumbnail: false };
  } catch (err) {
    if (!(err instanceof ApiError) || ![404, 405].includes(err.status)) throw err;
  }
  if (source.page !== 1) return null;
  try {
    return { url: await blobUrl(`${base}/thumbnail`), thumbnail: true };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

async function loadPage(source: SourceOut, body: HTMLElement): Promise<void> {
  let page: PageOut;
  let image: { url: string; thumbnail: boolean } | null = null;
  try {
    page = await getJson<PageOut>(`/api/v1/documents/${encodeURIComponent(source.document_id)}/pages/${source.page}`);
    try {
      image = await pageImage(source);
    } catch {
      image = null; // the text below still shows the passage
    }
  } catch (err) {
    clear(body);
    body.append(h("p", { class: "error", role: "alert" }, errorText(err)));
    return;
  }
  if (image) objectUrls.push(image.url);
  clear(body);
  const blocks = page.blocks ?? [];
  const hasGeometry = page.width_pt > 0 && page.height_pt > 0;
  const sheetHits = hasGeometry && (blocks.length > 0 || image) ? pageSheet(page, blocks, source.snippet, image) : null;
  if (sheetHits) body.append(sheetHits);
  body.append(
    h(
      "p",
      { class: "muted page-meta" },
      t("viewer.source", { source: page.source === "layer" ? t("viewer.layer") : page.source }),
      " · ",
      t("viewer.confidence", { value: Math.round(page.confidence * 100) }),
    ),
  );
  const text = pageText(page.markdown, source.snippet);
  if (sheetHits) {
    body.append(h("details", { class: "page-text-box" }, h("summary", {}, t("viewer.text")), text));
  } else {
    body.append(h("h3", { class: "sr-only" }, t("viewer.text")), text);
  }
}

/** The page at its aspect ratio: image underneath (if any), the blocks laid over it in place. */
function pageSheet(
  page: PageOut,
  blocks: PageBlock[],
  snippet: string,
  image: { url: string; thumbnail: boolean } | null,
): HTMLElement {
  const w = page.width_pt;
  const hgt = page.height_pt;
  const sheet = h("div", { class: image ? "sheet" : "sheet sheet-text", "data-testid": "page-sheet" });
  sheet.style.aspectRatio = `${w} / ${hgt}`;
  if (image) {
    const img = h("img", { src: image.url, alt: t("viewer.image"), "data-testid": "page-image" });
    if (image.thumbnail) {
      // The thumbnail is the page fitted into 200×300 and centred on white: undo the padding so
      // that page coordinates line up with the picture.
      const s = Math.min(THUMB_W / w, THUMB_H / hgt);
      const iw = w * s;
      const ih = hgt * s;
      img.style.width = `${(THUMB_W / iw) * 100}%`;
      img.style.height = `${(THUMB_H / ih) * 100}%`;
      img.style.left = `${(-(THUMB_W - iw) / 2 / iw) * 100}%`;
      img.style.top = `${(-(THUMB_H - ih) / 2 / ih) * 100}%`;
    }
    sheet.append(img);
  }
  for (const b of blocks) {
    const [x0, y0, x1, y1] = b.bbox;
    const hit = blockMatches(b, snippet);
    const box = h("div", { class: hit ? "box hit" : "box", "data-testid": hit ? "highlight-box" : null, title: b.text });
    box.style.left = `${(x0 / w) * 100}%`;
    box.style.top = `${(y0 / hgt) * 100}%`;
    box.style.width = `${((x1 - x0) / w) * 100}%`;
    box.style.height = `${((y1 - y0) / hgt) * 100}%`;
    if (!image) {
      // No picture of the page: show the block's words where they stand on the page.
      box.textContent = b.text;
      box.style.fontSize = `${Math.max(((y1 - y0) / hgt) * 100 * 0.8, 0.6)}cqh`;
    }
    sheet.append(box);
  }
  return h("div", { class: "sheet-frame" }, sheet);
}

function pageText(markdown: string, snippet: string): HTMLElement {
  const out = h("div", { class: "page-text", "data-testid": "page-text", tabindex: "0" });
  let pos = 0;
  let first: HTMLElement | null = null;
  for (const [start, end] of findRanges(markdown, snippet)) {
    if (start > pos) out.append(markdown.slice(pos, start));
    const mark = h("mark", { "data-testid": "page-mark" }, markdown.slice(start, end));
    first ??= mark;
    out.append(mark);
    pos = end;
  }
  if (pos < markdown.length) out.append(markdown.slice(pos));
  if (!markdown) out.append(h("span", { class: "muted" }, t("viewer.noText")));
  if (first) {
    const target = first;
    requestAnimationFrame(() => target.scrollIntoView({ block: "center" }));
  }
  return out;
}
