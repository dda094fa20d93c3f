"""Counting tokens the way the LLM does, for the context budget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def token_counter(tokenizer: str) -> Callable[[str], int] | None:
    """Count with the LLM's own tokenizer when ``tokenizer`` (``BUNKO_LLM_TOKENIZER``: a local
    directory, or a Hugging Face id already in the local cache) loads offline; otherwise None,
    and the context builder estimates."""
    if not tokenizer:
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    except Exception as exc:  # missing files, unknown id, bad config: all mean "estimate instead"
        log.warning("cannot load the LLM tokenizer %r offline (%s); token counts are estimated",
                    tokenizer, exc)
        return None

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False, verbose=False))

    return count
