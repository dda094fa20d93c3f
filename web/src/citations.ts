// Citations in an answer, read the way bunko.generate.citations reads them: "[文書1]",
// "[文書1: 決算報告書, 第12頁]", "[文書1、文書3]", "[1]", full-width brackets and digits.

import type { SourceOut } from "./types";

export type Segment = { text: string } | { text: string; numbers: number[] };

const BRACKETED = /[[［【]([^[\]［］【】\n]{1,200})[\]］】]/g;
const SEPARATORS = /[,，、;；・]/;
const DOC_PART = /^\s*文書\s*(\d+)(?:\s*[:：(（][\s\S]*)?\s*$/;
const NUMBER_PART = /^\s*(\d+)\s*$/;

function parseBody(body: string): number[] {
  const numbers: number[] = [];
  const parts = body.normalize("NFKC").split(SEPARATORS);
  for (let i = 0; i < parts.length; i++) {
    const doc = DOC_PART.exec(parts[i]) ?? NUMBER_PART.exec(parts[i]);
    if (doc) numbers.push(Number(doc[1]));
    else if (i === 0) return []; // "[注]", "[報告書 2023]": not a citation
  }
  return numbers;
}

export function splitCitations(text: string): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  for (const m of text.matchAll(BRACKETED)) {
    const numbers = parseBody(m[1]);
    if (!numbers.length) continue;
    const start = m.index ?? 0;
    if (start > pos) out.push({ text: text.slice(pos, start) });
    out.push({ text: m[0], numbers });
    pos = start + m[0].length;
  }
  if (pos < text.length) out.push({ text: text.slice(pos) });
  return out;
}

/** Block numbers in order of first citation, without repeats. */
export function citedNumbers(text: string): number[] {
  const seen: number[] = [];
  for (const seg of splitCitations(text)) {
    if ("numbers" in seg) for (const n of seg.numbers) if (!seen.includes(n)) seen.push(n);
  }
  return seen;
}

/**
 * Which source a citation number points at. The api lists sources cited-first, one per page; when
 * it sends `refs` (the block numbers behind each source) the mapping is exact. Without them the
 * k-th distinct cited number is taken to be the k-th source, which holds unless two cited blocks
 * come from the same page.
 */
export function sourceIndexFor(n: number, answer: string, sources: SourceOut[]): number {
  if (sources.some((s) => Array.isArray(s.refs))) {
    return sources.findIndex((s) => s.refs?.includes(n));
  }
  const k = citedNumbers(answer).indexOf(n);
  if (k < 0) return -1;
  return Math.min(k, sources.length - 1);
}
