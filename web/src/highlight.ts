// Finding a cited passage (the source's snippet) in a page's text and in its OCR / layout blocks.
// Text is compared after NFKC and with whitespace removed: the snippet is whitespace-collapsed
// chunk text, the page is Markdown, and Japanese has no spaces to rely on anyway.

import type { PageBlock } from "./types";

const MIN_PART = 4;
const GAP = /^[\s|｜:\-]*$/;

function normChar(c: string): string {
  return c.normalize("NFKC").replace(/\s+/g, "");
}

export function norm(s: string): string {
  return s.normalize("NFKC").replace(/\s+/g, "");
}

/** The snippet cut into sentences (and lines), each long enough to be a telling match. */
export function snippetParts(snippet: string): string[] {
  const body = snippet.replace(/^…|…$/g, "");
  // Sentences only: whitespace is dropped on both sides, so a Markdown table or a heading followed
  // by its paragraph compares equal across line breaks.
  const parts = body
    .split(/(?<=[。！？!?])/)
    .map(norm)
    .filter((p) => p.length >= MIN_PART);
  const whole = norm(body);
  return parts.length ? parts : whole.length ? [whole] : [];
}

/** [start, end) ranges of `text` that hold one of the snippet's parts, merged and sorted. */
export function findRanges(text: string, snippet: string): [number, number][] {
  // Normalised text plus, for each of its characters, the index in `text` it came from.
  let normed = "";
  const origin: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const n = normChar(text[i]);
    for (const c of n) {
      normed += c;
      origin.push(i);
    }
  }
  const ranges: [number, number][] = [];
  for (const part of snippetParts(snippet)) {
    let from = 0;
    let at: number;
    while ((at = normed.indexOf(part, from)) >= 0) {
      ranges.push([origin[at], origin[at + part.length - 1] + 1]);
      from = at + part.length;
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    // Parts separated only by spaces, line breaks or table bars are one passage: one mark.
    if (last && (r[0] <= last[1] || GAP.test(text.slice(last[1], r[0])))) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

/** Whether a block's text is part of the cited passage. */
export function blockMatches(block: PageBlock, snippet: string): boolean {
  const text = norm(block.text);
  if (text.length < 2) return false;
  const whole = norm(snippet.replace(/^…|…$/g, ""));
  if (text.length >= 3 && whole.includes(text)) return true;
  return snippetParts(snippet).some((p) => text.includes(p));
}
