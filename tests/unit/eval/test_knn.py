import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from vjepa.eval.knn import knn_accuracy, knn_scores


def brute_force_weighted_knn(train, train_labels, queries, k, temperature, num_classes):
    """Independent reference: loop over queries, full sort, python-level voting."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    scores = np.zeros((len(queries), num_classes))
    for i, q in enumerate(queries):
        q = q / np.linalg.norm(q)
        sims = train @ q
        nearest = np.argsort(-sims, kind="stable")[:k]
        for j in nearest:
            scores[i, train_labels[j]] += np.exp(sims[j] / temperature)
    return scores


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(7, 16))
    train_labels = rng.integers(0, 7, 500)
    val_labels = rng.integers(0, 7, 200)
    train = centers[train_labels] + 0.9 * rng.normal(size=(500, 16))
    val = centers[val_labels] + 0.9 * rng.normal(size=(200, 16))
    return train.astype(np.float32), train_labels, val.astype(np.float32), val_labels


def test_scores_match_brute_force_reference(blobs):
    train, tl, val, vl = blobs
    ours = knn_scores(train, tl, val, k=20, temperature=0.07, num_classes=7).numpy()
    ref = brute_force_weighted_knn(train.astype(np.float64), tl, val.astype(np.float64), 20, 0.07, 7)
    np.testing.assert_allclose(ours, ref, rtol=2e-3)


def test_chunking_does_not_change_the_result(blobs):
    train, tl, val, vl = blobs
    whole = knn_scores(train, tl, val, k=20, temperature=0.07, num_classes=7)
    chunked = knn_scores(train, tl, val, k=20, temperature=0.07, num_classes=7, chunk_bytes=4 * 500 * 3)
    torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=0)
    assert torch.equal(whole.argmax(1), chunked.argmax(1))


def test_unweighted_vote_matches_scikit_learn(blobs):
    train, tl, val, vl = blobs
    clf = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute").fit(train, tl)
    sk_pred = clf.predict(val)
    ours = knn_scores(train, tl, val, k=20, temperature=None, num_classes=7).argmax(1).numpy()
    assert (ours == sk_pred).all()
    acc = knn_accuracy(train, tl, val, vl, k=20, temperature=None, num_classes=7)
    assert acc["top1"] == pytest.approx((sk_pred == vl).mean())


def test_accuracy_known_answers():
    # Two well-separated clusters: perfect top-1; top-5 with only 2 classes is perfect too.
    train = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    val = np.array([[1, 0.05], [0.05, 1]], dtype=np.float32)
    assert knn_accuracy(train, labels, val, np.array([0, 1]), k=2) == {"top1": 1.0, "top5": 1.0}
    assert knn_accuracy(train, labels, val, np.array([1, 0]), k=2, num_classes=10)["top1"] == 0.0


def test_top5_counts_a_hit_in_the_five_best_classes():
    # Query nearest to class 0, then 1..5 with decreasing similarity; true label 4 is within top-5.
    angles = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.5])
    train = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    labels = np.arange(7)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    acc = knn_accuracy(train, labels, q, np.array([4]), k=7)
    assert acc == {"top1": 0.0, "top5": 1.0}
    assert knn_accuracy(train, labels, q, np.array([6]), k=7)["top5"] == 0.0
