"""Weighted k-nearest-neighbour classification of frozen features (DINO's protocol).

Features are L2-normalised; similarity is cosine; each of the k nearest training
samples votes for its class with weight exp(sim / T) (or 1 with T = None). Queries
are processed in chunks so that the similarity block stays within a memory budget
(50k train × 10k queries × 384 features: ~0.3 GB beyond the features).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def knn_scores(
    train_features,
    train_labels,
    query_features,
    *,
    k: int = 20,
    temperature: float | None = 0.07,
    num_classes: int | None = None,
    chunk_bytes: int = 200 * 2**20,
    device=None,
) -> torch.Tensor:
    """Class scores Q×C from the k nearest training features of each query."""
    device = torch.device(device or "cpu")
    train_t = F.normalize(torch.as_tensor(train_features, dtype=torch.float32, device=device), dim=1).T.contiguous()
    labels = torch.as_tensor(np.asarray(train_labels), dtype=torch.long, device=device)
    queries = torch.as_tensor(query_features, dtype=torch.float32)
    num_classes = int(num_classes or int(labels.max()) + 1)
    n_train = train_t.shape[1]
    k = min(k, n_train)
    chunk = max(1, chunk_bytes // (4 * n_train))
    # One similarity buffer for every chunk: a fresh block per chunk would be page-faulted in anew.
    buffer = torch.empty(min(chunk, queries.shape[0]), n_train, device=device)
    scores = torch.zeros(queries.shape[0], num_classes)
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].to(device), dim=1)
        sim, idx = torch.mm(q, train_t, out=buffer[: len(q)]).topk(k, dim=1)
        weight = torch.ones_like(sim) if temperature is None else (sim / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes, device=device)
        votes.scatter_add_(1, labels[idx], weight)
        scores[start : start + chunk] = votes.cpu()
    return scores


def knn_accuracy(
    train_features,
    train_labels,
    val_features,
    val_labels,
    *,
    k: int = 20,
    temperature: float | None = 0.07,
    num_classes: int | None = None,
    device=None,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (fractions) of the weighted kNN vote on the validation set."""
    val_labels = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    n_classes = num_classes or int(max(np.max(train_labels), int(val_labels.max()))) + 1
    scores = knn_scores(
        train_features, train_labels, val_features, k=k, temperature=temperature, num_classes=n_classes, device=device
    )
    top1 = scores.argmax(1)  # ties go to the lowest class index, as in scikit-learn
    top5 = scores.topk(min(5, n_classes), dim=1).indices
    return {
        "top1": (top1 == val_labels).float().mean().item(),
        "top5": (top5 == val_labels[:, None]).any(1).float().mean().item(),
    }
