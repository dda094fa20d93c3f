"""Context assembly: the passages the LLM reads, as numbered, cited blocks within a token budget.

Each block starts ``[文書N: タイトル, 第P頁]``; N numbers the passages in the order given (best
first), so the model's citations map back to :class:`Hit` objects by position.
"""

from __future__ import annotations

from collections.abc import Callable

from bunko.domain import Hit

# Without the model's tokenizer: Japanese runs about one token per 1–1.5 characters in the common
# LLM vocabularies, so one token per character errs on the safe side.
CHARS_PER_TOKEN = 1.0


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def block_header(n: int, hit: Hit) -> str:
    title = hit.title or hit.document_id
    return f"[文書{n}: {title}, 第{hit.page_no}頁]"


def build_context(
    hits: list[Hit], *, token_budget: int, count_tokens: Callable[[str], int] | None = None
) -> tuple[str, list[Hit]]:
    """Join the passages into blocks in the order given (best first), until the budget is spent.

    Returns the context text and the hits it holds (block N is ``used[N-1]``). A passage that does
    not fit is skipped and smaller ones after it may still go in; nothing is cut mid-passage."""
    count = count_tokens or estimate_tokens
    # ``hits`` come best first (search's order, which already put TOC / index passages last even
    # where their score is higher): keep it.
    ordered = hits
    blocks: list[str] = []
    used: list[Hit] = []
    spent = 0
    for hit in ordered:
        block = f"{block_header(len(used) + 1, hit)}\n{hit.text.strip()}"
        cost = count(block) + (count("\n\n") if blocks else 0)
        if spent + cost > token_budget:
            continue
        blocks.append(block)
        used.append(hit)
        spent += cost
    return "\n\n".join(blocks), used
