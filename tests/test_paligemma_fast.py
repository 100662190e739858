"""The π0-FAST-layout VLA (PaliGemma + FAST tokens of an action chunk) at tiny size: the
causal suffix, padding, greedy decoding, persistence, LoRA as the authors run it, and the
APO step against the adapter-disabled reference."""

import numpy as np
import pytest
import torch

from apo_core.config import load_config
from apo_core.data.steps import Steps
from apo_core.labels import ActedBy, Label
from apo_core.objectives import adaptive_weights, l1_error
from apo_core.policy import ActionTokens, load_policy
from apo_core.policy.configuration_paligemma_fast import PaliGemmaFastPolicyConfig
from apo_core.policy.modeling_paligemma_fast import PaliGemmaFastPolicy
from apo_core.training import train

EPISODES, LENGTH = 4, 24


def synthetic_steps() -> Steps:
    """Four episodes of smooth actions: expert demos, then corrections and failure-prone steps."""
    rng = np.random.default_rng(0)
    rows = EPISODES * LENGTH
    time = np.tile(np.arange(LENGTH), EPISODES)[:, None] / LENGTH
    phases = np.repeat(rng.uniform(0, 1, (EPISODES, 4)), LENGTH, axis=0)
    actions = (np.sin(2 * np.pi * (2 * time + phases)) + 0.1 * rng.normal(size=(rows, 4))).astype(np.float32)
    acted_by = np.full(rows, ActedBy.EXPERT_DEMO, dtype=np.int8)
    labels = np.full(rows, Label.AUTONOMOUS, dtype=np.int8)
    acted_by[2 * LENGTH:] = ActedBy.POLICY
    acted_by[2 * LENGTH + 12:3 * LENGTH] = ActedBy.HUMAN
    labels[2 * LENGTH + 12:3 * LENGTH] = Label.HUMAN
    labels[2 * LENGTH + 2:2 * LENGTH + 12] = Label.FAILURE_PRONE
    return Steps(
        images=rng.integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8),
        proprio=rng.normal(size=(rows, 4)).astype(np.float32),
        environment_state=rng.normal(size=(rows, 17)).astype(np.float32),
        actions=actions,
        policy_actions=np.where(acted_by[:, None] == ActedBy.HUMAN, -actions, np.nan).astype(np.float32),
        acted_by=acted_by, labels=labels, instructions=np.array(["push the puck to the goal"] * rows, dtype=object),
        episode_ids=np.repeat([f"episode-{i}" for i in range(EPISODES)], LENGTH).astype(object),
        success=np.ones(rows, dtype=bool))


@pytest.fixture(scope="module")
def steps():
    return synthetic_steps()


@pytest.fixture(scope="module")
def policy(steps):
    settings = PaliGemmaFastPolicyConfig(chunk_size=4, state_inputs="proprio+goal", use_image=True)
    demos = steps.select(steps.acted_by == ActedBy.EXPERT_DEMO)
    return PaliGemmaFastPolicy.build(settings, demos, image_size=64, action_dim=4, gripper_dim=3, seed=0).eval()


def inputs(policy, steps, rows=slice(0, 6)):
    return policy.observations(steps.images[rows], steps.proprio[rows], steps.environment_state[rows],
                               list(steps.instructions[rows]))


def chunk_tokens(policy, steps, rows=slice(0, 6)) -> ActionTokens:
    from apo_core.data.steps import action_chunks

    chunks = action_chunks(steps.actions, steps.episode_ids, policy.chunk_size)[rows]
    return policy.encode_actions(chunks)


def test_the_action_suffix_is_causal(policy, steps):
    """Changing a later action token leaves every earlier token's log-prob unchanged: the
    suffix carries token_type_ids = 1."""
    tokens = chunk_tokens(policy, steps)
    before = policy.score_actions(inputs(policy, steps), tokens).token_logps
    for position in (1, 3, 5):
        changed = tokens.ids.clone()
        changed[:, position] = policy.config.fast_offset + (changed[:, position] - policy.config.fast_offset + 7) % 50
        after = policy.score_actions(inputs(policy, steps), ActionTokens(changed, tokens.mask)).token_logps
        assert torch.allclose(after[:, :position], before[:, :position], atol=1e-6)


def test_padding_neither_counts_nor_changes_the_tokens(policy, steps):
    tokens = chunk_tokens(policy, steps)
    scores = policy.score_actions(inputs(policy, steps), tokens)
    assert (scores.token_logps[~tokens.mask] == 0).all() and (scores.token_logps[tokens.mask] < 0).all()
    padded = tokens.ids.clone()
    padded[~tokens.mask] = policy.config.fast_offset + 3
    again = policy.score_actions(inputs(policy, steps), ActionTokens(padded, tokens.mask)).token_logps
    assert torch.allclose(again, scores.token_logps, atol=1e-6)


def test_chunks_round_trip_and_greedy_decoding_matches_the_teacher_forced_argmax(policy, steps):
    from apo_core.data.steps import action_chunks

    chunks = action_chunks(steps.actions, steps.episode_ids, 4)[:6]
    decoded, ok = policy.decode_actions(policy.encode_actions(chunks))
    assert ok.all() and decoded.shape == (6, 4, 4)
    normalizer = policy.action_normalizer  # the chunks as normalisation leaves them (clipped at q01 / q99)
    clipped = normalizer.unnormalize(normalizer.normalize(chunks))
    half_width = (normalizer.q99 - normalizer.q01).max() / 2
    assert np.abs(decoded - clipped).max() <= half_width * 0.5 / policy.fast.scale * np.sqrt(2 * 4) + 1e-6
    generated = policy.generate(inputs(policy, steps))
    scores = policy.score_actions(inputs(policy, steps), generated)
    assert torch.equal(scores.greedy_ids[generated.mask], generated.ids[generated.mask])


def test_an_undecodable_chunk_weighs_one(policy, steps):
    """A sequence without EOS (or with an impossible length) does not decode; APO's
    continuous error is then NaN and the sample's weight 1 (docs/apo.md §5)."""
    tokens = chunk_tokens(policy, steps, slice(0, 2))
    cut = ActionTokens(tokens.ids, tokens.mask & (tokens.ids != policy.config.eos_id))
    decoded, ok = policy.decode_normalized(ActionTokens(tokens.ids.clone(), tokens.mask).stack(cut)[:, 1])
    assert not ok.any()
    errors = l1_error(decoded, torch.zeros_like(decoded), ok)
    assert torch.equal(adaptive_weights(errors, torch.tensor([True, False])), torch.ones(2))


def test_save_and_load_give_the_same_log_probs(policy, steps, tmp_path):
    policy.save_pretrained(tmp_path)
    loaded = load_policy(tmp_path)
    assert isinstance(loaded, PaliGemmaFastPolicy)
    tokens = chunk_tokens(policy, steps)
    assert torch.equal(loaded.score_actions(inputs(loaded, steps), tokens).token_logps,
                       policy.score_actions(inputs(policy, steps), tokens).token_logps)


def test_lora_save_load_merge_gives_the_same_log_probs_and_disabled_is_the_base(policy, steps, tmp_path):
    """LoRA as the authors run it (r 32, α 16, dropout 0, every linear layer of the language
    model); the adapter saved, loaded on the base and merged scores as the live adapter."""
    from peft import LoraConfig, PeftModel, get_peft_model

    policy.save_pretrained(tmp_path / "base")
    live = load_policy(tmp_path / "base")
    model = get_peft_model(live, LoraConfig(r=32, lora_alpha=16, lora_dropout=0.0, target_modules=live.lora_targets))
    adapted = [name for name, _ in model.named_modules() if name.endswith("lora_A")]
    assert adapted and all("language_model" in name for name in adapted)
    tokens, observations = chunk_tokens(policy, steps), inputs(policy, steps)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.05)
        with model.disable_adapter():
            base = live.score_actions(observations, tokens).token_logps
        adapted_logps = live.score_actions(observations, tokens).token_logps
    assert torch.equal(base, policy.score_actions(observations, tokens).token_logps)
    assert not torch.allclose(adapted_logps, base)
    model.save_pretrained(tmp_path / "adapter")
    merged = PeftModel.from_pretrained(load_policy(tmp_path / "base"), tmp_path / "adapter").merge_and_unload()
    assert torch.allclose(merged.score_actions(observations, tokens).token_logps, adapted_logps, atol=1e-5)


@pytest.mark.parametrize("update_params", ["lora", "full"])
def test_at_step_zero_the_apo_loss_is_half_the_mean_weight(policy, steps, tmp_path, update_params):
    """Policy = reference at step 0 (the reference's log-probs precomputed, before any
    adapter): every L_i = 0.5, so the loss is 0.5 · mean(λ)."""
    config = load_config(None, {"train": {"epochs": 1e-6, "batch_size": 8, "threads": 1, "update_params": update_params,
                                          "apo": {"nll_weight": 0.0}}}).train
    policy.save_pretrained(tmp_path / "reference")
    seen = []
    train(load_policy(tmp_path / "reference"), steps, "apo", config, tmp_path / "work",
          on_step=lambda step, total, metrics: seen.append(metrics))
    assert seen[0]["loss_unweighted"] == pytest.approx(0.5, abs=1e-6)
    assert seen[0]["loss"] == pytest.approx(0.5 * seen[0]["weight_mean"], abs=1e-6)


@pytest.mark.parametrize("lora_vision", [False, True])
def test_a_lora_update_trains_the_language_model_and_with_lora_vision_the_vision_tower(policy, steps, tmp_path,
                                                                                       lora_vision):
    config = load_config(None, {"train": {"epochs": 0.5, "batch_size": 8, "threads": 1, "lr": 1e-2,
                                          "update_params": "lora", "lora_vision": lora_vision}}).train
    policy.save_pretrained(tmp_path / "reference")
    before = {name: tensor.clone() for name, tensor in load_policy(tmp_path / "reference").state_dict().items()}
    updated = train(load_policy(tmp_path / "reference"), steps, "dagger", config, tmp_path / "work")
    after = updated.state_dict()
    assert set(after) == set(before), "the merged policy has the plain (adapter-free) layout"
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all("language_model" in name or "vision_tower" in name for name in changed)
    assert any("vision_tower" in name for name in changed) == lora_vision
