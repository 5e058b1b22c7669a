"""What the core's Backend base class does for every backend: the prompt-embedding cache."""

import pytest
import torch

from vmc_cli.backend import Backend


class Counting(Backend):
    """A text 'encoder' whose state for a prompt is its length, counting every prompt it sees."""

    def __init__(self):
        self.dtype = torch.float16
        self.seen: list[str] = []
        self.released = False

    def prompt_key(self, prompt):
        return prompt.strip().lower()

    def encode_text(self, prompts):
        if self.released:
            raise RuntimeError("released")
        assert not torch.is_grad_enabled()  # the encoder never builds a graph
        self.seen += prompts
        return torch.tensor([[float(len(p)), 1.0] for p in prompts], dtype=torch.float64)


def test_each_prompt_is_encoded_once_and_kept():
    b = Counting()
    out = b.encode_prompts(["a cat", "A Cat ", "", "a cat"])
    assert b.seen == ["a cat", ""]  # one encoding per distinct key, in first-seen order
    assert out.dtype == torch.float16 and out.shape == (4, 2)
    assert out[:, 0].tolist() == [5.0, 5.0, 0.0, 5.0]
    b.released = True  # after the text encoder is gone, prompts seen before still work
    assert b.encode_prompts(["", "a cat"])[:, 0].tolist() == [0.0, 5.0]
    with pytest.raises(RuntimeError):
        b.encode_prompts(["a dog"])
    b._embeddings.clear()  # a backend whose encoder changes clears the cache
    b.released = False
    b.encode_prompts(["a cat"])
    assert b.seen == ["a cat", "", "a cat"]


def test_a_backend_without_adapters_refuses_an_adapter_profile():
    """A profile whose manifest records adapters (a Wan LoRA profile) on a backend that has none:
    one line naming both, and a profile without adapters passes."""
    from vmc_cli.errors import VmcError
    from vmc_cli.models.plugins import get_backend

    backend = get_backend("tiny")
    backend.use_adapter_layout(None, "plain")
    assert backend.adapter_layout() is None
    with pytest.raises(VmcError, match="profile 'p' holds lora adapters, which backend 'tiny' does not take") as err:
        backend.use_adapter_layout({"kind": "lora", "rank": 16}, "p")
    assert "vmc profiles show" in err.value.hint
