"""Tiny random models built offline for tests (no download, seconds to build)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

TINY_MAX_TOKENS = 16
TINY_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's defaults, written explicitly
TINY_STD = (0.26862954, 0.26130258, 0.27577711)


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins a byte-level BPE (GPT-2/CLIP) uses for bytes."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def make_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random CLIP model + tokenizer + image processor to ``path``.

    Everything is built offline: a byte-level BPE vocabulary (every byte, with
    and without the end-of-word marker, a few merges, CLIP's special tokens),
    a 2-layer text and vision transformer of width 32 (images 32x32, patches
    8x8) and a CLIPImageProcessor resizing/cropping to 32.  Returns ``path``.
    """
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok_dir = path / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)

    chars = _byte_chars()
    merges = ["a t</w>", "c at</w>", "i s</w>", "i n", "in g</w>"]
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (tok_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=TINY_MAX_TOKENS)

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=list(TINY_MEAN),
        image_std=list(TINY_STD),
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)

    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TINY_MAX_TOKENS,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    shutil.rmtree(tok_dir)  # the saved tokenizer.json replaces the BPE source files
    return path


