"""The policy and its training: which policy (one section class per kind, registered by
``kind``), behaviour cloning, and the update with one section of settings per method (TRL's
shape)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, WrapValidator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from apo_core.config.base import Section
from apo_core.policy.configuration import PolicySection
from apo_core.policy.configuration_apo_vla import ApoVlaPolicyConfig
from apo_core.policy.configuration_paligemma_fast import PaliGemmaFastPolicyConfig

Method = Literal["bc", "dagger", "sirius", "dpo", "kto", "apo"]
UPDATE_METHODS = ("dagger", "sirius", "dpo", "kto", "apo")  # round k+1 from round k (all but bc)


# Each policy kind's ``policy:`` section, by ``kind`` (the models are in apo_core/policy/kinds.py).
POLICY_CONFIGS: dict[str, type[PolicySection]] = {
    section.model_fields["kind"].default: section for section in (ApoVlaPolicyConfig, PaliGemmaFastPolicyConfig)}
DEFAULT_POLICY_KIND = "apo-vla"
# A config stored before each kind had its own section (a round's training record) names every kind's fields.
FLAT_POLICY_FIELDS = {name for section in POLICY_CONFIGS.values() for name in section.model_fields}


def _fields_of_its_kind(policy: dict[str, Any]) -> dict[str, Any]:
    """Only the fields of the mapping's kind; a field of another kind is refused by name,
    except in a config stored when the section was one flat model (a round's training
    record): it holds every kind's fields, and the other kinds' are dropped."""
    kind = policy.get("kind", DEFAULT_POLICY_KIND)
    if kind not in POLICY_CONFIGS:
        expected = " or ".join(repr(name) for name in POLICY_CONFIGS)
        raise ValidationError.from_exception_data("policy", [InitErrorDetails(
            type="literal_error", loc=("kind",), input=kind, ctx={"expected": expected})])
    own, flat = POLICY_CONFIGS[kind].model_fields, FLAT_POLICY_FIELDS <= policy.keys()
    kept, foreign = {"kind": kind}, []
    for name, value in policy.items():
        owner = next((other for other, section in POLICY_CONFIGS.items() if name in section.model_fields), None)
        if name in own or owner is None:  # an unknown key is left to the section to refuse
            kept[name] = value
        elif not flat:
            foreign.append(InitErrorDetails(type=PydanticCustomError(
                "policy_kind", "a field of policy kind {owner}, not of {kind}", {"owner": owner, "kind": kind}),
                loc=(name,), input=value))
    if foreign:
        raise ValidationError.from_exception_data("policy", foreign)
    return kept


def _one_kind(value: Any, handler):
    """Validates ``policy:`` as the section of its ``kind``; errors name ``policy.<field>``
    (without the kind pydantic puts between them)."""
    if isinstance(value, dict):
        value = _fields_of_its_kind(value)
    try:
        return handler(value)
    except ValidationError as error:
        raise ValidationError.from_exception_data(error.title, [_without_kind(item) for item in error.errors()]) \
            from None


def _without_kind(item: dict[str, Any]) -> InitErrorDetails:
    location = item["loc"]
    if location[:1] and location[0] in POLICY_CONFIGS:
        location = location[1:]
    details = InitErrorDetails(type=item["type"], loc=location, input=item["input"])
    if "ctx" in item:
        details["ctx"] = item["ctx"]
    return details


PolicyConfig = Annotated[ApoVlaPolicyConfig | PaliGemmaFastPolicyConfig, Field(discriminator="kind"),
                         WrapValidator(_one_kind)]


class KTOConfig(Section):
    """Method kto: the prospect loss on balanced batches, every λ = 1 (docs/apo.md §5, §7)."""

    beta: float = Field(0.1, gt=0, description="β of the prospect loss")
    z0_clamp: tuple[float | None, float | None] | None = Field(
        (-5.0, 5.0), description="[low, high] clamp of the KL estimate z0 (the APO code; TRL's KTO: [0, null])")
    z0_mode: Literal["mismatched", "exact"] = Field(
        "mismatched", description="mismatched: z0 from mismatched pairs (the paper); exact: the per-token KL over "
        "the action tokens' distributions")
    ignore_gripper_when_undesirable: bool = Field(
        True, description="leave the gripper token out of an undesirable sample's reward (the supplementary)")
    ratios: dict[Literal["correct", "human", "failure"], float] = Field(
        default_factory=lambda: {"correct": 0.5, "human": 0.25, "failure": 0.25},
        description="shares of each batch: correct / human-correction / failure-prone steps")
    autonomous_is_correct: bool = Field(True, description="the robot's own autonomous steps join the 'correct' "
                                        "pool (the authors' code; the paper: the demos only)")
    nll_weight: float = Field(1.0, ge=0, description="NLL anchor on the desirable samples (TRL's rpo_alpha; the "
                              "authors' code: 0)")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> KTOConfig:
        low, high = self.z0_clamp or (None, None)
        if low is not None and high is not None and low > high:
            raise ValueError(f"z0_clamp must be [low, high] with low <= high, got [{low}, {high}]")
        if set(self.ratios) != {"correct", "human", "failure"} or any(v < 0 for v in self.ratios.values()):
            raise ValueError(f"ratios needs non-negative shares for correct, human and failure, got {self.ratios}")
        if self.ratios["human"] <= 0:
            raise ValueError("ratios.human must be > 0: an epoch is a pass over the human-correction steps")
        return self


class APOConfig(KTOConfig):
    """Method apo: the prospect loss with adaptive weights λ_D / λ_U from the policy's
    current continuous error on each sample (docs/apo.md §5)."""

    beta_d: float = Field(1.0, ge=0, description="β_D of the desirable weights λ_D = 1 - exp(-β_D w)")
    beta_u: float = Field(1.0, ge=0, description="β_U of the undesirable weights λ_U = exp(-β_U w)")
    weight_norm: Literal["batch", "subset"] = Field(
        "batch", description="w_i normalised over the batch (the paper) or within the desirable and undesirable "
        "subsets (the authors' code)")
    desirable_mass_ratio: float | None = Field(
        None, gt=0, description="KTO-style balance: rescale λ so Σλ_D / Σλ_U = this (null: as the formula gives)")


class DPOConfig(Section):
    """Method dpo: chosen = the human's action, rejected = the policy's recorded proposal."""

    beta: float = Field(0.1, gt=0, description="β of the DPO loss")


class SiriusConfig(Section):
    """Method sirius: intervention-weighted behaviour cloning, as shares of each batch."""

    intervention_share: float = Field(0.5, gt=0, lt=1, description="the interventions' share of each batch")
    pre_intervention_share: float = Field(0.002, ge=0, lt=1, description="the failure-prone steps' share "
                                          "(Sirius: ~0)")

    @model_validator(mode="after")
    def _shares_leave_room(self) -> SiriusConfig:
        if self.intervention_share + self.pre_intervention_share >= 1:
            raise ValueError("intervention_share + pre_intervention_share must be < 1 (the rest is the demos' "
                             "and robot steps' share)")
        return self


class TrainConfig(Section):
    """Behaviour cloning (round 0) and the update of round k+1 from round k (docs/apo.md §5-§7).

    The defaults were chosen on validation seeds for the tiny policy (benchmarks/README.md);
    the paper's settings are in each field's description. Each update method reads its own
    section (dagger has no settings of its own: NLL on the demos and the corrections).
    """

    seed: int = Field(0, description="seeds the policy's initialisation, the batch schedule and augmentation")
    threads: int = Field(2, ge=1, description="torch threads of training in the flow's own process (on Ray: "
                         "cluster.update_cpus)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when the machine has a GPU "
                                                   "(on Ray the update then asks for num_gpus: 1)")
    checkpoint_every: int = Field(200, ge=1, description="optimiser steps between checkpoints (a killed run "
                                  "resumes from the last)")
    bc_steps: int = Field(2000, ge=1, le=1_000_000, description="behaviour-cloning steps of round 0, from random init")
    bc_batch_size: int = Field(32, ge=1, le=65_536, description="behaviour-cloning batch size")
    bc_lr: float = Field(3e-4, gt=0, le=1, description="behaviour-cloning learning rate (Adam)")
    aux_weight: float = Field(1.0, ge=0, description="weight of the auxiliary continuous-action regression "
                              "(it grounds the encoder)")
    aux_object_weight: float = Field(1.0, ge=0, description="weight of the image's auxiliary regression of the "
                                     "object poses, in behaviour cloning and in every update but dpo's (a "
                                     "training-only target the simulator records; the policy never reads the "
                                     "poses; steps recorded without poses are left out). 0: off")
    augment_shift: int = Field(4, ge=0, description="random-shift image augmentation, pixels (image policies)")
    replay_episodes: int | None = Field(
        80, ge=0, le=1_000_000, description="episodes of earlier rounds an update reads beside its own round's and "
        "the demonstrations: the tasks in turn, episodes with a takeover first, seeded by train.seed "
        "(apo_core/data/replay.py); fixed, so an update costs the same at round 50 as at round 2. null: every "
        "earlier episode (the cost grows with the rounds)")
    epochs: float = Field(10, gt=0, le=1000, description="the update's budget: passes over the human-correction steps "
                          "(the authors' unit; they run 50)")
    update_params: Literal["lora", "full"] = Field("full", description="full: every parameter; lora: adapters on "
                                                   "every linear layer of the language model, merged after the "
                                                   "update (the paper)")
    batch_size: int = Field(32, ge=2, le=65_536, description="the update's batch size (paper: 8 per GPU × 4 GPUs)")
    lr: float = Field(3e-4, gt=0, le=1, description="the update's learning rate (paper: 5e-5)")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps, then cosine decay to 0")
    lora_r: int = Field(32, ge=1, description="LoRA rank (paper: 32)")
    lora_alpha: int = Field(16, ge=1, description="LoRA alpha (paper: 16)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (paper: 0)")
    lora_vision: bool = Field(False, description="LoRA on the vision tower's linear layers too (the language "
                              "model's always)")
    sirius: SiriusConfig = Field(default_factory=SiriusConfig, description="method sirius")
    dpo: DPOConfig = Field(default_factory=DPOConfig, description="method dpo")
    kto: KTOConfig = Field(default_factory=KTOConfig, description="method kto")
    apo: APOConfig = Field(default_factory=APOConfig, description="method apo")
