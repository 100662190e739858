"""APO labels (docs/apo.md §2): hand-made edge cases and properties on random sequences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apo_core.labels import ActedBy, Label, label_steps, retained_steps, takeover_starts

P, H, E = ActedBy.POLICY, ActedBy.HUMAN, ActedBy.EXPERT_DEMO
F, A, C, D = Label.FAILURE_PRONE, Label.AUTONOMOUS, Label.HUMAN, Label.DROPPED


def seq(text: str) -> np.ndarray:
    """'ppphh' -> [P, P, P, H, H]."""
    return np.array([{"p": P, "h": H, "e": E}[c] for c in text], dtype=np.int8)


def labels(text: str, **kwargs) -> str:
    out = label_steps(seq(text), **kwargs)
    return "".join({F: "0", A: "1", C: "2", D: "-"}[int(v)] for v in out)


def test_k_steps_before_a_takeover_are_failure_prone():
    assert labels("pppppphhhppp", k=3) == "111000222111"


def test_takeover_fewer_than_k_steps_into_the_episode_labels_what_exists():
    assert labels("pphhpp", k=10) == "002211"


def test_takeover_at_the_first_step_has_nothing_to_label():
    assert labels("hhppp", k=10) == "22111"


def test_two_takeovers_closer_than_k_keep_human_steps_human():
    # Second takeover at index 6: its window (3..5) holds two human steps that stay human.
    assert labels("ppphhphhpp", k=3) == "0002202211"


def test_two_takeovers_closer_than_k_explicit():
    got = labels("pppphhpphh", k=4)
    # first takeover at 4 -> steps 0..3 failure; second at 8 -> window 4..7: humans stay 2,
    # policy steps 6, 7 become failure-prone.
    assert got == "0000220022"


def test_expert_demo_steps_are_desirable():
    assert labels("eeee", k=2) == "1111"


def test_unrescued_failure_labels_the_tail_when_enabled():
    assert labels("pppppp", k=2, episode_success=False, label_unrescued_failure=True) == "111100"
    assert labels("pppppp", k=2, episode_success=False) == "111111"
    assert labels("pppppp", k=2, episode_success=True, label_unrescued_failure=True) == "111111"
    # Failing while the human is in control is not the policy's failure.
    assert labels("pppphh", k=2, episode_success=False, label_unrescued_failure=True) == "110022"


def test_k_counts_retained_steps_only():
    retained = np.array([True, True, True, False, False, True, True])
    # Dropped steps are skipped: the K=2 window before the takeover is steps {2, 0..}.
    got = label_steps(seq("pppppph"), k=2, retained=retained)
    assert got.tolist() == [A, A, F, D, D, F, C]


def test_retained_steps_filters():
    actions = np.array([[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 1.0], [1.5, 0.0, 0.0, 0.0]])
    assert retained_steps(actions) is None
    assert retained_steps(actions, drop_noop=True).tolist() == [False, True, True]
    assert retained_steps(actions, drop_out_of_range=True).tolist() == [True, True, False]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown values"):
        label_steps(np.array([0, 7]))
    with pytest.raises(ValueError, match="k must be"):
        label_steps(seq("pp"), k=-1)
    with pytest.raises(ValueError, match="shape"):
        label_steps(seq("pp"), retained=np.array([True]))


acted_by_sequences = st.lists(st.sampled_from([int(P), int(H)]), min_size=0, max_size=80).map(
    lambda xs: np.array(xs, dtype=np.int8)
)


@settings(max_examples=300, deadline=None)
@given(acted_by=acted_by_sequences, k=st.integers(0, 15))
def test_properties_on_random_sequences(acted_by, k):
    out = label_steps(acted_by, k=k)
    assert out.shape == acted_by.shape
    human = acted_by == H
    # Human steps are always corrections; policy steps are never corrections.
    assert np.all(out[human] == C)
    assert np.all(out[~human] != C)
    # A policy step is failure-prone iff a takeover starts within the next k steps.
    starts = takeover_starts(acted_by)
    for t in np.flatnonzero(~human):
        expected = any(0 < s - t <= k for s in starts)
        assert (out[t] == F) == expected, (t, acted_by.tolist(), k)
    # The number of failure-prone steps never exceeds k per takeover.
    assert np.sum(out == F) <= k * len(starts)


@settings(max_examples=200, deadline=None)
@given(acted_by=acted_by_sequences, k=st.integers(1, 12), data=st.data())
def test_dropped_steps_do_not_count_towards_k(acted_by, k, data):
    retained = np.array(data.draw(st.lists(st.booleans(), min_size=len(acted_by), max_size=len(acted_by))), dtype=bool)
    out = label_steps(acted_by, k=k, retained=retained)
    assert np.all(out[~retained] == D)
    # Labelling the retained steps alone gives the same labels.
    assert np.array_equal(out[retained], label_steps(acted_by[retained], k=k))
