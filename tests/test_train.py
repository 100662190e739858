"""Trainer: BC and every preference method run on real recorded data; determinism,
crash/resume, and the step-0 identity (policy == reference -> every L_i = 0.5)."""

import pytest
import torch

from apo_core.config import with_overrides
from apo_core.data.steps import expert_mask
from apo_core.policy import ApoVlaPolicy
from apo_core.training import TRAINERS, train


def tiny(config, **update):
    """Small budgets; ``update`` may name a method's section, e.g. ``apo={"z0_mode": "exact"}``."""
    settings = {"bc_steps": 12, "epochs": 0.05, "bc_batch_size": 8, "batch_size": 8, "checkpoint_every": 5,
                "threads": 1, **update}
    return with_overrides(config, {"train": settings}).train


def new_policy(steps, config):
    return ApoVlaPolicy.build(config.policy, steps.select(expert_mask(steps)), image_size=64, action_dim=4,
                              gripper_dim=3, seed=0)


def train_bc(policy, steps, settings, work_dir, **callbacks):
    return train(policy, steps, "bc", settings, work_dir, **callbacks)


def weights(policy):
    return {name: tensor.clone() for name, tensor in policy.state_dict().items()}


@pytest.fixture(scope="module")
def bc_policy_dir(small_round, config, tmp_path_factory):
    policy = train_bc(new_policy(small_round, config), small_round, tiny(config), tmp_path_factory.mktemp("bc"))
    directory = tmp_path_factory.mktemp("round0")
    policy.save_pretrained(directory)
    return directory


def test_bc_is_deterministic_and_learns(small_round, config, tmp_path):
    losses = []
    first = train_bc(new_policy(small_round, config), small_round, tiny(config, bc_steps=40), tmp_path / "a",
                     on_step=lambda step, total, m: losses.append(m["nll"]))
    second = train_bc(new_policy(small_round, config), small_round, tiny(config, bc_steps=40), tmp_path / "b")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert sum(losses[-5:]) < sum(losses[:5])
    assert not (tmp_path / "a" / "checkpoint.pt").exists()  # removed once finished


def test_bc_resumes_after_a_crash_to_the_same_weights(small_round, config, tmp_path):
    settings = tiny(config, bc_steps=14)
    reference = train_bc(new_policy(small_round, config), small_round, settings, tmp_path / "straight")

    def crash(step, total, metrics):
        if step == 8:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        train_bc(new_policy(small_round, config), small_round, settings, tmp_path / "crashy", on_step=crash)
    assert (tmp_path / "crashy" / "checkpoint.pt").exists()
    resumed = train_bc(new_policy(small_round, config), small_round, settings, tmp_path / "crashy")
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.parametrize("method", ["kto", "apo"])
def test_at_step_zero_policy_equals_reference_and_every_loss_is_one_half(method, small_round, config,
                                                                          bc_policy_dir, tmp_path):
    seen = []
    train(ApoVlaPolicy.from_pretrained(bc_policy_dir), small_round, method, tiny(config, epochs=1e-6), tmp_path,
          on_step=lambda step, total, m: seen.append(m))
    assert seen[0]["loss_unweighted"] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("method", ["dagger", "sirius", "dpo", "kto", "apo"])
def test_every_method_updates_the_policy_through_decoder_lora(method, small_round, config, bc_policy_dir, tmp_path):
    before = weights(ApoVlaPolicy.from_pretrained(bc_policy_dir))
    settings = tiny(config, lr=1e-3, epochs=0.1, update_params="lora")
    updated = train(ApoVlaPolicy.from_pretrained(bc_policy_dir), small_round, method, settings, tmp_path)
    after = updated.state_dict()
    assert set(after) == set(before), "merged policy must have the plain (LoRA-free) layout"
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed and all(name.startswith("decoder.model.layers.") for name in changed)


def test_exact_z0_and_subset_weights_run(small_round, config, bc_policy_dir, tmp_path):
    seen = []
    settings = tiny(config, epochs=0.02, apo={"z0_mode": "exact", "weight_norm": "subset"})
    train(ApoVlaPolicy.from_pretrained(bc_policy_dir), small_round, "apo", settings, tmp_path,
          on_step=lambda step, total, m: seen.append(m))
    assert seen[0]["z0"] == pytest.approx(0.0, abs=1e-5)  # KL(π || π) = 0 at step 0


def test_a_full_update_trains_every_part_and_counts_steps_in_epochs(small_round, config, bc_policy_dir, tmp_path):
    settings = tiny(config, lr=1e-3, epochs=0.1, update_params="full", apo={"nll_weight": 1.0})
    before = weights(ApoVlaPolicy.from_pretrained(bc_policy_dir))
    totals = []
    updated = train(ApoVlaPolicy.from_pretrained(bc_policy_dir), small_round, "apo", settings, tmp_path,
                    on_step=lambda step, total, m: totals.append((total, m["nll_anchor"])))
    schedule = TRAINERS["apo"](ApoVlaPolicy.from_pretrained(bc_policy_dir), small_round, settings).batches()
    assert totals[0][0] == len(schedule)
    after = updated.state_dict()
    changed = {name.split(".")[0] for name in before if not torch.equal(before[name], after[name])}
    assert {"decoder", "state_projector"} <= changed


def test_a_non_finite_loss_stops_training_and_saves_nothing(tmp_path):
    """The guard of the shared optimisation loop: at the first NaN loss it stops with a clear
    error; the checkpoint of the last good step is the only thing on disk."""
    from apo_core.training import TrainingDiverged
    from apo_core.training.run import CHECKPOINT_FILE, optimise

    model = torch.nn.Linear(3, 1)
    target = torch.ones(4, 1)

    def loss_at(step):
        loss = ((model(torch.ones(4, 3)) - target) ** 2).mean()
        return (loss * float("nan") if step == 5 else loss), {}

    identity = {"data_fingerprint": "abc", "method": "bc", "total_steps": 10, "settings_sha256": "x"}
    with pytest.raises(TrainingDiverged, match=r"diverged at step 6/10: the loss is nan"):
        optimise(model, loss_at, identity=identity, lr=1e-2, warmup=0, work_dir=tmp_path, checkpoint_every=2,
                 threads=1)
    saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert saved["step"] == 4 and saved["identity"] == identity


def test_training_runs_on_its_threads_and_gives_the_caller_its_own_back(tmp_path):
    """A Ray worker trains on train.threads, then evaluates on the threads it had before."""
    from apo_core.training.run import optimise

    model = torch.nn.Linear(3, 1)
    seen = []

    def loss_at(step):
        seen.append(torch.get_num_threads())
        return model(torch.ones(4, 3)).pow(2).mean(), {}

    identity = {"data_fingerprint": "abc", "method": "bc", "total_steps": 3, "settings_sha256": "x"}
    before = torch.get_num_threads()
    training = 1 if before > 1 else 2
    optimise(model, loss_at, identity=identity, lr=1e-2, warmup=0, work_dir=tmp_path, checkpoint_every=10,
             threads=training)
    assert seen == [training] * 3
    assert torch.get_num_threads() == before
