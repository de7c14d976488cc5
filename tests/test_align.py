import jiwer
import numpy as np
import pytest

from harness.scoring.align import align

CASES = [
    # reference, hypothesis, (hits, S, D, I)
    ("a b c", "a b c", (3, 0, 0, 0)),
    ("a b c", "a x c", (2, 1, 0, 0)),
    ("a b c", "a c", (2, 0, 1, 0)),
    ("a b c", "a b y c", (3, 0, 0, 1)),
    ("a b c", "", (0, 0, 3, 0)),
    ("", "extra words", (0, 0, 0, 2)),
    ("", "", (0, 0, 0, 0)),
    ("the cat sat", "a cat sat down", (2, 1, 0, 1)),
]


@pytest.mark.parametrize(("ref", "hyp", "expected"), CASES)
def test_counts_per_case(ref, hyp, expected):
    counts = align([ref], [hyp])
    got = (counts.hits[0], counts.substitutions[0], counts.deletions[0], counts.insertions[0])
    assert got == expected


def test_batch_equals_one_by_one_and_jiwer():
    refs = [c[0] for c in CASES if c[0]]
    hyps = [c[1] for c in CASES if c[0]]
    together = align(refs, hyps)
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        single = align([ref], [hyp])
        assert single.errors[0] == together.errors[i]
    assert together.errors.sum() / together.ref_words.sum() == pytest.approx(jiwer.wer(refs, hyps))


def test_wer_zero_iff_equal_and_order_invariant():
    rng = np.random.default_rng(0)
    vocab = ["a", "b", "c", "d"]
    refs = [" ".join(rng.choice(vocab, size=rng.integers(1, 6))) for _ in range(50)]
    hyps = [r if i % 3 else " ".join(rng.choice(vocab, size=3)) for i, r in enumerate(refs)]
    counts = align(refs, hyps)
    for i, (r, h) in enumerate(zip(refs, hyps, strict=True)):
        assert (counts.errors[i] == 0) == (r == h)
    order = rng.permutation(len(refs))
    shuffled = align([refs[i] for i in order], [hyps[i] for i in order])
    assert np.array_equal(shuffled.errors, counts.errors[order])


def test_length_mismatch():
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        align(["a"], ["a", "b"])
