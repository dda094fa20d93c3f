"""Tiny random-init models for tests, saved where the production loaders can read them.

Model hubs are unreachable in tests and CI, so tests build their own models: a byte-level BPE
tokenizer trained in milliseconds on a small built-in Japanese + English corpus, and transformer
models of a few hundred thousand parameters saved with ``save_pretrained``. They produce noise, not
meaning, but they exercise exactly the code paths the real models do (tokenisation, padding,
pooling, batching, generation, streaming).

Every builder takes a directory and returns the model's path. The directory doubles as a cache:
a finished build leaves a marker file, and a second call with the same directory returns at once.
Builds go to a sibling temporary directory first and are renamed into place, so an interrupted build
never leaves a half-written model behind.

=========================  ===============================================  ===========================
builder                    what it saves                                    load it with
=========================  ===============================================  ===========================
``make_tokenizer``         ``PreTrainedTokenizerFast`` + ChatML template     ``AutoTokenizer``
``make_tiny_embedder``     ``LlamaModel`` + last-token pooling + Normalize  ``SentenceTransformer``
``make_tiny_reranker``     ``LlamaForSequenceClassification``, 1 label      ``CrossEncoder``
``make_tiny_llm``          ``Qwen2ForCausalLM`` + tokenizer + template      ``AutoModelForCausalLM``
=========================  ===============================================  ===========================
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MARKER = ".bunko-tiny-model"

BOS_TOKEN = "<s>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<pad>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, IM_START]
# Ten times transformers' default: at 0.02 a tiny random model maps every input to nearly the same
# vector and greedy decoding repeats one token; at 0.2 outputs depend on the input, as tests need.
INIT_RANGE = 0.2

# ChatML, as Qwen2 uses; the generation prompt opens the assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "文庫は日本語のPDFから質問に答えるシステムです。",
    "決算報告書の第12頁に売上高の推移が記載されている。",
    "本書は株式会社の有価証券報告書であり、営業利益は前年比で増加した。",
    "東京都千代田区丸の内一丁目に本社を置く。",
    "令和五年度の研究開発費は三億円であった。",
    "表1：地域別の売上高（単位：百万円）",
    "関東、関西、九州、北海道の各地域で販売を行っている。",
    "取扱説明書をよくお読みのうえ、正しくお使いください。",
    "電源を切ってから掃除をしてください。感電のおそれがあります。",
    "縦書きの文章は右から左へ読む。句読点は「、」と「。」を使う。",
    "ひらがな、カタカナ、漢字、そして英数字が混在する文書も多い。",
    "質問：この契約の解約条件は何ですか？ 回答：三か月前までに書面で通知する。",
    "参考文献：日本語処理の基礎、第三版、二〇二三年。",
    "機械学習モデルは埋め込みベクトルを生成し、検索に利用される。",
    "全角ＡＢＣと半角ABC、全角１２３と半角123を正規化する。",
    "Bunko answers questions over Japanese PDFs with page-level citations.",
    "The quarterly report shows revenue growth in every region.",
    "Retrieval combines dense vectors with BM25 over Sudachi tokens.",
    "A cross-encoder reranks the top twenty passages down to five.",
    "Scanned pages are rasterised at 300 dpi and passed to OCR.",
    "The model returns an answer and the sources it cited.",
    "Sources: annual report, page 12. [END]",
]


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build`` into a fresh temporary sibling of ``target`` unless a finished build is there."""
    target = Path(target)
    if (target / _MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        (staging / _MARKER).write_text("ok\n")
        if target.exists():
            # An earlier build was interrupted (no marker): replace it.
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            # Another process finished the same build first; its result is as good as ours.
            if not (target / _MARKER).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _train_tokenizer(vocab_size: int = 700) -> Any:  # a PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _save_tokenizer(path: Path) -> None:
    _train_tokenizer().save_pretrained(str(path))


def make_tokenizer(directory: str | Path) -> Path:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with pad/bos/eos tokens and a ChatML template."""
    return _build_once(Path(directory), _save_tokenizer)


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _llama_config(tokenizer: Any, **extra: Any) -> Any:  # a LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def make_tiny_embedder(directory: str | Path) -> Path:
    """A sentence-transformers model: tiny ``LlamaModel`` → last-token pooling → Normalize (as Sarashina).

    Output dimension 32. Load with ``SentenceTransformer(str(path))``.
    """

    def build(path: Path) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
        from transformers import LlamaModel

        _seeded(1)
        tokenizer = _train_tokenizer()
        backbone_dir = path / "_backbone"
        LlamaModel(_llama_config(tokenizer)).save_pretrained(str(backbone_dir))
        tokenizer.save_pretrained(str(backbone_dir))
        transformer = Transformer(str(backbone_dir), max_seq_length=256)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
        SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").save(str(path))
        shutil.rmtree(backbone_dir)

    return _build_once(Path(directory), build)


def make_tiny_reranker(directory: str | Path) -> Path:
    """A tiny ``LlamaForSequenceClassification`` with one label. Load with ``CrossEncoder(str(path))``."""

    def build(path: Path) -> None:
        from transformers import LlamaForSequenceClassification

        _seeded(2)
        tokenizer = _train_tokenizer()
        config = _llama_config(tokenizer, num_labels=1)
        LlamaForSequenceClassification(config).save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))

    return _build_once(Path(directory), build)


def make_tiny_llm(
    directory: str | Path,
    *,
    context: int = 1024,
    hidden_size: int = 32,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
) -> Path:
    """A tiny ``Qwen2ForCausalLM`` with the tokenizer and its ChatML template.

    Random weights: it generates fluent noise, deterministically under greedy decoding. ``context``
    sets the positions (rotary: a longer window is only a config change) and the tokenizer's
    ``model_max_length``; Bunko's system prompt plus five passages need ~4k of its byte-level
    tokens. Head size is ``hidden_size / num_attention_heads`` (8 by default; vLLM's CPU attention
    needs 32 or more). A finished build in ``directory`` is reused whatever the arguments, so give
    each variant its own directory.
    """

    def build(path: Path) -> None:
        from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

        _seeded(3)
        tokenizer = _train_tokenizer()
        tokenizer.model_max_length = context
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            max_position_embeddings=context,
            tie_word_embeddings=True,
            initializer_range=INIT_RANGE,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = Qwen2ForCausalLM(config)
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            do_sample=False,
        )
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))

    return _build_once(Path(directory), build)


__all__ = [
    "CHAT_TEMPLATE",
    "CORPUS",
    "make_tiny_embedder",
    "make_tiny_llm",
    "make_tiny_reranker",
    "make_tokenizer",
]
