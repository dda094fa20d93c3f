// Ask a question and watch the answer stream in; citations open their source.

import { ApiError, getJson, streamQuery } from "../api";
import { citedNumbers, sourceIndexFor, splitCitations } from "../citations";
import { clear, h } from "../dom";
import { errorText, t } from "../i18n";
import type { Ctx } from "../main";
import type { AnswerOut, CollectionOut, SourceOut } from "../types";
import { openSourceViewer, sourceLabel } from "./page";

const MAX_QUESTION = 500;

export function renderAsk(root: HTMLElement, _ctx: Ctx): () => void {
  let controller: AbortController | null = null;

  const collection = h("select", { id: "ask-collection", "data-testid": "ask-collection" });
  const question = h("textarea", {
    id: "ask-question",
    rows: 3,
    maxlength: MAX_QUESTION,
    required: true,
    placeholder: t("ask.placeholder"),
    "data-testid": "ask-question",
  });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "ask-submit" }, t("ask.submit"));
  const stop = h("button", { type: "button", hidden: true, "data-testid": "ask-stop" }, t("ask.stop"));
  const status = h("p", { class: "muted", role: "status", "data-testid": "ask-status" });
  const answerBox = h("div", { class: "answer-text", "data-testid": "answer", "aria-live": "polite" });
  const meta = h("p", { class: "muted answer-meta", "data-testid": "answer-meta" });
  const sourcesList = h("ol", { class: "sources", "data-testid": "sources" });
  const sourcesHead = h("h2", { hidden: true }, t("ask.sources"));
  const result = h("section", { class: "card answer-card", hidden: true, "aria-label": t("ask.answer") }, answerBox, meta, sourcesHead, sourcesList);

  const form = h(
    "form",
    { class: "card ask-form", "data-testid": "ask-form" },
    h("h1", {}, t("ask.title")),
    h("div", { class: "row" }, h("label", { for: "ask-collection" }, t("ask.collection")), collection),
    h("label", { for: "ask-question" }, t("ask.question")),
    question,
    h("p", { class: "muted hint" }, t("ask.hint")),
    h("div", { class: "row" }, submit, stop),
    status,
  );
  root.append(form, result);

  getJson<CollectionOut[]>("/api/v1/collections")
    .then((list) => {
      for (const c of list) collection.append(h("option", { value: c.name }, c.name));
      if (!list.length) status.textContent = t("ask.noCollections");
    })
    .catch((err: unknown) => {
      status.textContent = errorText(err);
    });

  question.addEventListener("keydown", (e) => {
    // Enter asks; Shift+Enter is a new line; Enter that confirms an IME conversion does nothing.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", () => controller?.abort());

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    void ask(text);
  });

  async function ask(text: string): Promise<void> {
    controller?.abort();
    controller = new AbortController();
    submit.disabled = true;
    stop.hidden = false;
    status.textContent = t("ask.searching");
    result.hidden = false;
    result.classList.add("streaming");
    result.setAttribute("aria-busy", "true");
    clear(answerBox);
    clear(sourcesList);
    meta.textContent = "";
    sourcesHead.hidden = true;
    let streamed = "";
    let sources: SourceOut[] = [];
    let final: AnswerOut | null = null;
    try {
      for await (const event of streamQuery({ question: text, collection: collection.value || "default" }, controller.signal)) {
        if (event.type === "token") {
          streamed += event.text;
          answerBox.textContent = streamed;
          status.textContent = t("ask.streaming");
        } else if (event.type === "sources") {
          sources = event.sources;
        } else if (event.type === "done") {
          final = event.answer;
        } else if (event.type === "error") {
          throw new ApiError(500, event.error.code, event.error.message, event.error.detail);
        }
      }
      const answer: AnswerOut = final ?? {
        query_id: "",
        answer: streamed,
        sources,
        confidence: 0,
        processing_time_ms: 0,
        mode: "",
      };
      showAnswer(answer);
      status.textContent = t("ask.done");
    } catch (err) {
      if (controller.signal.aborted) {
        status.textContent = t("ask.stopped");
      } else {
        status.textContent = "";
        answerBox.append(h("p", { class: "error", role: "alert", "data-testid": "ask-error" }, errorText(err)));
      }
    } finally {
      submit.disabled = false;
      stop.hidden = true;
      result.classList.remove("streaming");
      result.removeAttribute("aria-busy");
    }
  }

  function showAnswer(answer: AnswerOut): void {
    clear(answerBox);
    const sources = answer.sources;
    const cards: HTMLLIElement[] = [];
    for (const line of answer.answer.split("\n")) {
      const p = h("p", {});
      for (const seg of splitCitations(line)) {
        if (!("numbers" in seg)) {
          p.append(seg.text);
          continue;
        }
        for (const n of seg.numbers) {
          const index = sourceIndexFor(n, answer.answer, sources);
          if (index < 0) {
            p.append(`[${t("ask.doc")}${n}]`);
            continue;
          }
          p.append(
            h(
              "a",
              {
                href: `#source-${index + 1}`,
                class: "cite",
                "data-testid": "citation",
                "data-n": n,
                "aria-label": t("ask.citeLabel", { n, title: sources[index].title, page: sources[index].page }),
                onclick: (e: Event) => {
                  e.preventDefault();
                  focusCard(cards[index]);
                  openSourceViewer(sources[index], `[${t("ask.doc")}${n}]`);
                },
              },
              `[${t("ask.doc")}${n}]`,
            ),
          );
        }
      }
      answerBox.append(p);
    }
    const parts = [t(`mode.${answer.mode}`)];
    if (answer.mode !== "not_found") parts.push(t("ask.confidence", { value: Math.round(answer.confidence * 100) }));
    if (answer.processing_time_ms) parts.push(t("ask.time", { ms: Math.round(answer.processing_time_ms) }));
    if (answer.cached) parts.push(t("ask.cached"));
    meta.textContent = parts.join(" · ");

    const cited = citedNumbers(answer.answer);
    sourcesHead.hidden = sources.length === 0;
    sources.forEach((s, i) => {
      const numbers = cited.filter((n) => sourceIndexFor(n, answer.answer, sources) === i);
      const card = h(
        "li",
        { id: `source-${i + 1}`, class: "source-card", "data-testid": "source-card", tabindex: "-1" },
        h(
          "div",
          { class: "source-head" },
          numbers.length ? h("span", { class: "cite-badge" }, numbers.map((n) => `[${t("ask.doc")}${n}]`).join("")) : null,
          h("strong", { class: "source-title", "data-testid": "source-title" }, s.title),
          h("span", { class: "muted", "data-testid": "source-page" }, sourceLabel(s)),
        ),
        h("p", { class: "snippet", "data-testid": "source-snippet" }, s.snippet),
        h(
          "button",
          {
            type: "button",
            "data-testid": "source-open",
            onclick: () => openSourceViewer(s, numbers.length ? `[${t("ask.doc")}${numbers[0]}]` : ""),
          },
          t("ask.openPage"),
        ),
      );
      cards.push(card);
      sourcesList.append(card);
    });
  }

  function focusCard(card: HTMLLIElement | undefined): void {
    if (!card) return;
    for (const c of sourcesList.children) c.classList.remove("active");
    card.classList.add("active");
    card.scrollIntoView({ block: "nearest" });
  }

  question.focus();
  return () => controller?.abort();
}
