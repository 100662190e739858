"""The tiny VLA: persistence, LoRA placement, greedy decoding with the KV cache."""

import numpy as np
import pytest
import torch

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.policy import DECODER_LORA_TARGETS, ApoVlaConfig, ApoVlaPolicy, instruction_vocab


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    config = ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal", "open the drawer"]))
    tokenizer = ActionTokenizer.fit(np.random.default_rng(0).normal(size=(200, 4)))
    return ApoVlaPolicy(config, tokenizer).eval()


@pytest.fixture(scope="module")
def batch(policy):
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8, generator=generator)
    state = torch.randn(5, policy.config.state_dim, generator=generator)
    ids = policy.instruction_ids(["push the puck to the goal"] * 3 + ["open the drawer"] * 2)
    return policy.pixels(images), state, ids


def test_instruction_tokens_are_padded_to_a_fixed_length(policy):
    ids = policy.instruction_ids(["push the puck to the goal", "open the drawer", "fly away"])
    assert ids.shape == (3, policy.config.max_instruction_tokens)
    assert ids[2, 0].item() == policy.config.instruction_vocab.index("[UNK]")


def test_greedy_decoding_matches_the_teacher_forced_argmax(policy, batch):
    bins = policy.generate(*batch)
    assert bins.shape == (5, 4) and bins.max() < 255
    output = policy(*batch, bins)
    assert torch.equal(output.action_logprobs[:, 0].argmax(dim=-1), bins)
    assert torch.allclose(output.action_logprobs.exp().sum(-1), torch.ones(5, 1, 4), atol=1e-5)


def test_save_and_load_are_bit_exact(policy, batch, tmp_path):
    policy.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json", "action_stats.json"}
    loaded = ApoVlaPolicy.from_pretrained(tmp_path)
    for (name, a), b in zip(policy.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.generate(*batch), policy.generate(*batch))
    np.testing.assert_array_equal(loaded.action_tokenizer.q99, policy.action_tokenizer.q99)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        ApoVlaPolicy.from_pretrained(tmp_path)


def test_lora_targets_the_decoder_only_and_starts_as_the_base(policy, batch):
    from peft import LoraConfig, get_peft_model

    fresh = ApoVlaPolicy(policy.config, policy.action_tokenizer)
    fresh.load_state_dict(policy.state_dict())
    model = get_peft_model(fresh, LoraConfig(r=8, lora_alpha=16, target_modules=DECODER_LORA_TARGETS))
    lora_modules = [name for name, _ in model.named_modules() if name.endswith("lora_A")]
    assert lora_modules and all(".decoder.model.layers." in name for name in lora_modules)
    assert len(lora_modules) == 7 * policy.config.decoder_layers
    bins = torch.zeros(5, 4, dtype=torch.long)
    with torch.no_grad():
        # Perturb the adapter, then check disable_adapter() gives back the base exactly.
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.1)
        adapted = model(*batch, bins).action_logprobs
        with model.disable_adapter():
            base = model(*batch, bins).action_logprobs
    assert not torch.allclose(adapted, base)
    assert torch.allclose(base, policy(*batch, bins).action_logprobs, atol=1e-6)


def test_the_mismatched_pair_on_the_cached_prefix_scores_as_a_full_pass(policy, batch):
    """forward_with_mismatched: the own action as forward() gives it, with its graph; the
    mismatched action's token log-probs as a full pass gives them, without a graph."""
    generator = torch.Generator().manual_seed(2)
    own, mismatched = (torch.randint(0, 256, (5, 4), generator=generator) for _ in range(2))
    policy.train()
    try:
        output, mismatched_logps = policy.forward_with_mismatched(*batch, own, mismatched)
        full = policy(*batch, torch.stack([own, mismatched], dim=1))
    finally:
        policy.eval()
    assert torch.allclose(output.action_logprobs[:, 0], full.action_logprobs[:, 0], atol=1e-5)
    assert torch.allclose(mismatched_logps, policy.token_logps(full, torch.stack([own, mismatched], dim=1))[:, 1],
                          atol=1e-5)
    assert output.action_logprobs.requires_grad and not mismatched_logps.requires_grad
