"""The tiny VLA through the policy interface: persistence, LoRA placement, greedy decoding
with the KV cache, the causal action suffix, and where a policy comes from."""

import json

import numpy as np
import pytest
import torch

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.errors import ApoError
from apo_core.policy import ActionTokens, ApoVlaConfig, ApoVlaPolicy, initial_policy, instruction_vocab, load_policy
from apo_core.policy.configuration_apo_vla import ApoVlaPolicyConfig


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    config = ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal", "open the drawer"]))
    tokenizer = ActionTokenizer.fit(np.random.default_rng(0).normal(size=(200, 4)))
    return ApoVlaPolicy(config, tokenizer).eval()


@pytest.fixture(scope="module")
def observations(policy):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    proprio = rng.normal(size=(5, policy.config.proprio_dim)).astype(np.float32)
    environment_state = rng.normal(size=(5, policy.config.environment_state_dim)).astype(np.float32)
    return policy.observations(images, proprio, environment_state,
                               ["push the puck to the goal"] * 3 + ["open the drawer"] * 2)


def random_tokens(seed: int, rows: int = 5) -> ActionTokens:
    return ActionTokens(torch.randint(0, 256, (rows, 4), generator=torch.Generator().manual_seed(seed)))


def test_instruction_tokens_are_padded_to_a_fixed_length(policy):
    ids = policy.instruction_ids(["push the puck to the goal", "open the drawer", "fly away"])
    assert ids.shape == (3, policy.config.max_instruction_tokens)
    assert ids[2, 0].item() == policy.config.instruction_vocab.index("[UNK]")


def test_greedy_decoding_matches_the_teacher_forced_argmax(policy, observations):
    tokens = policy.generate(observations)
    assert tokens.ids.shape == (5, 4) and tokens.ids.max() < 255
    scores = policy.score_actions(observations, tokens, full=True)
    assert torch.equal(scores.greedy_ids, tokens.ids)
    assert torch.allclose(scores.logprobs.exp().sum(-1), torch.ones(5, 4), atol=1e-5)


def test_the_action_suffix_is_causal(policy, observations):
    """Changing a later action token leaves every earlier token's log-prob unchanged."""
    tokens = random_tokens(3)
    before = policy.score_actions(observations, tokens).token_logps
    for position in range(1, 4):
        changed = tokens.ids.clone()
        changed[:, position:] = (changed[:, position:] + 17) % 255
        after = policy.score_actions(observations, ActionTokens(changed)).token_logps
        assert torch.equal(after[:, :position], before[:, :position])
        assert not torch.allclose(after[:, position], before[:, position])


def test_tokens_round_trip_and_every_id_decodes_the_last_to_the_last_centre(policy):
    actions = np.random.default_rng(4).normal(size=(6, 4)).astype(np.float32)
    decoded, ok = policy.decode_actions(policy.encode_actions(actions[:, None]))  # chunks of one action
    decoded = decoded[:, 0]
    inside = np.abs(policy.action_tokenizer.normalize(actions)) < 1  # clipped outside [q01, q99]
    width = (policy.action_tokenizer.q99 - policy.action_tokenizer.q01) / 255
    assert ok.all() and np.all(np.abs(decoded - actions)[inside] <= np.broadcast_to(width, actions.shape)[inside])
    normalized, ok = policy.decode_normalized(ActionTokens(torch.tensor([[255, 254, 0, 1]])))
    centers = policy.action_tokenizer.centers
    assert ok.all() and normalized[0, 0].tolist() == pytest.approx([centers[-1], centers[-1], centers[0], centers[1]])


def test_save_and_load_are_bit_exact(policy, observations, tmp_path):
    policy.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json", "action_stats.json"}
    assert json.loads((tmp_path / "config.json").read_text())["kind"] == "apo-vla"
    loaded = load_policy(tmp_path)
    assert isinstance(loaded, ApoVlaPolicy)
    for (name, a), b in zip(policy.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.generate(observations).ids, policy.generate(observations).ids)
    np.testing.assert_array_equal(loaded.action_tokenizer.q99, policy.action_tokenizer.q99)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_policy(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "apo-vla"}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_policy(tmp_path)


def test_lora_targets_the_decoder_only_and_starts_as_the_base(policy, observations):
    from peft import LoraConfig, get_peft_model

    fresh = ApoVlaPolicy(policy.config, policy.action_tokenizer)
    fresh.load_state_dict(policy.state_dict())
    model = get_peft_model(fresh, LoraConfig(r=8, lora_alpha=16, target_modules=fresh.lora_targets))
    lora_modules = [name for name, _ in model.named_modules() if name.endswith("lora_A")]
    assert lora_modules and all(".decoder.model.layers." in name for name in lora_modules)
    assert len(lora_modules) == 7 * policy.config.decoder_layers
    tokens = ActionTokens(torch.zeros(5, 4, dtype=torch.long))
    with torch.no_grad():
        # Perturb the adapter, then check disable_adapter() gives back the base exactly.
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.1)
        adapted = fresh.score_actions(observations, tokens).token_logps
        with model.disable_adapter():
            base = fresh.score_actions(observations, tokens).token_logps
    assert not torch.allclose(adapted, base)
    assert torch.allclose(base, policy.score_actions(observations, tokens).token_logps, atol=1e-6)


def test_the_mismatched_pair_on_the_cached_prefix_scores_as_a_full_pass(policy, observations):
    """score_actions(mismatched=...): the own action as a plain pass gives it, with its graph;
    the mismatched action's token log-probs as a full pass gives them, without a graph."""
    own, mismatched = random_tokens(5), random_tokens(6)
    policy.train()
    try:
        scores = policy.score_actions(observations, own, mismatched=mismatched)
        full, _ = policy.score_candidates(observations, own.stack(mismatched))
    finally:
        policy.eval()
    assert torch.allclose(scores.token_logps, full[:, 0], atol=1e-5)
    assert torch.allclose(scores.mismatched_logps, full[:, 1], atol=1e-5)
    assert scores.token_logps.requires_grad and not scores.mismatched_logps.requires_grad


def test_a_pretrained_start_is_checked_against_the_world(policy, tmp_path):
    def start(directory, **world):
        settings = ApoVlaPolicyConfig(pretrained=directory)
        return initial_policy(settings, None, **{"image_size": 64, "action_dim": 4, "gripper_dim": 3, "seed": 0,
                                                 **world})

    with pytest.raises(ApoError, match="no such directory"):
        start(tmp_path / "nope")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"kind": "octo", "layers": 12}))
    with pytest.raises(ApoError, match="a policy of kind 'octo'"):
        start(foreign)
    policy.save_pretrained(tmp_path / "saved")
    with pytest.raises(ApoError, match="its action statistics have 4 dims, the world's actions 7"):
        start(tmp_path / "saved", action_dim=7)
    assert isinstance(start(tmp_path / "saved"), ApoVlaPolicy)


def test_a_config_json_saved_before_its_later_fields_still_loads(policy, observations, tmp_path):
    """Stored rounds predate the kind, the conv encoder, chunks and the object estimate:
    their config.json lacks those fields and loads with the dataclass defaults."""
    policy.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    later = ["kind", "vision_encoder", "conv_channels", "keypoints", "estimate_objects", "chunk_size",
             "environment_state_mean", "environment_state_std"]
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in later}))
    loaded = load_policy(tmp_path)
    assert loaded.config == policy.config and loaded.config.vision_encoder == "siglip" and loaded.chunk_size == 1
    assert torch.equal(loaded.generate(observations).ids, policy.generate(observations).ids)


def test_each_kind_names_its_section_and_its_saved_config_is_made_from_it():
    from apo_core.config import POLICY_CONFIGS
    from apo_core.policy import POLICY_KINDS
    from apo_core.policy.configuration_paligemma_fast import PaliGemmaFastConfig, PaliGemmaFastPolicyConfig

    assert {kind: model.config_class for kind, model in POLICY_KINDS.items()} == POLICY_CONFIGS
    with pytest.raises(TypeError, match="got policy.kind 'paligemma-fast'"):
        ApoVlaPolicy.build(PaliGemmaFastPolicyConfig(), None, image_size=64, action_dim=4, gripper_dim=3, seed=0)
    section = ApoVlaPolicyConfig(chunk_size=2, keypoints=8, hidden_size=64, vision_encoder="siglip",
                                 estimate_objects=False)
    vla = ApoVlaConfig.from_section(section, image_size=32)
    assert (vla.chunk_size, vla.keypoints, vla.hidden_size, vla.vision_encoder, vla.image_size) == (2, 8, 64,
                                                                                                    "siglip", 32)
    assert vla.decoder_intermediate_size == 128 and not vla.estimate_objects
    fast = PaliGemmaFastConfig.from_section(PaliGemmaFastPolicyConfig(decoder_layers=3, hidden_size=64),
                                            fast_vocab_size=100)  # the fitted vocabulary, not the cap
    assert (fast.text_layers, fast.head_dim, fast.text_intermediate_size, fast.fast_vocab_size) == (3, 32, 128, 100)
    assert fast.patch_size == 16 and fast.vision_hidden_size == 64  # the section's, not the dataclass defaults
