"""Magnet loss (Rippel, Paluri, Dollár, Bourdev, ICLR 2016): local cluster-level neighbourhoods of the training set.

**Clusters.** Every class of the fold's training set is split into K clusters by k-means on the
current embeddings (``state.embed_training_set()``, evaluation transform), recomputed in
``on_epoch_start`` every ``refresh_epochs`` epochs (epochs 1, 1 + r, 1 + 2r, …). The k-means is
ours (numpy, k-means++ seeding, Lloyd iterations, an empty cluster re-seeded with the point
farthest from its centre), seeded by the fold's seed and the epoch, so runs are deterministic. A
class with fewer than K images gets one cluster per image.

**Batches** (the ``batch_sampler`` hook; M = batch_size // m_per_class clusters, D = m_per_class
samples from each, M·D = batch_size, e.g. M = 8, D = 4 at batch 32):
a seed cluster drawn with probability proportional to its recent loss (uniform while no loss is
known; a cluster whose loss is not yet known counts with the mean of the known ones), its M − 1
nearest clusters by centre distance among the clusters of *other classes*, and D samples drawn
from each cluster (with replacement only when a cluster has fewer than D images). By default the
M clusters have M distinct classes (``distinct_classes``: the nearest impostor cluster of each
not-yet-used class), so a batch has the trainer's class-balanced shape; with
``distinct_classes=False`` two impostor clusters may share a class, as in the paper. The iterator
reads the method's current clusters at every ``next()``: the trainer creates it before the first
``on_epoch_start``; before any k-means it uses one cluster per class with neighbours drawn at
random. A cluster's recent loss is an exponential moving average (weight ``loss_momentum`` on the
newest value) of the mean loss of its samples in the batches it appeared in, recorded in
``forward`` from the batch indices; after a refresh a new cluster starts from the mean of the last
losses of its samples.

**Loss**, per sample r of cluster μ(r) (the batch mean of that cluster's samples):
    L(r) = [ ‖r − μ(r)‖²/(2σ²) + α + log Σ_{μ: clusters of other classes in the batch} exp(−‖r − μ‖²/(2σ²)) ]₊
with σ² = Σ_r ‖r − μ(r)‖² / (M·D − 1), the batch variance of the samples about their own cluster
mean (σ² enters once: two public re-implementations square it again, a bug); the mean over the
batch. Gradients flow through the means and σ². Clusters of the sample's own class other than
its own are in neither term. A sample with no other-class cluster in the batch has loss 0.
Defaults α = 1 (the paper's) and K = 2 (our classes have about 20 training images).

**Embeddings** are used unnormalised, as in the paper; the loss is invariant to a global scale of
the embeddings (σ² scales with them), and the k-means sees the same embeddings.

**Without cluster assignments** (``indices`` None, or no clusters yet, e.g. a generic test with
random labels) every class of the batch is one cluster.

Deviations: the paper's evaluation (a cluster-based classifier) is not used: our protocol's k-NN
retrieval is; the clusters are refreshed per epoch (the paper: "every so often").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.methods.base import Method, MethodContext, TrainingView
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float, Int


# -- k-means ---------------------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means of the rows of ``x``: (centres k × d, assignment of each row), every cluster non-empty.

    k-means++ seeding from ``rng``, Lloyd iterations until the assignment is stable; a cluster
    left empty takes the point farthest from its own centre. Needs ``k <= len(x)``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= {n} points, got k={k}")
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
    centres_arr = np.asarray(centres)
    assign = np.full(n, -1)
    for _ in range(iterations):
        d2 = ((x[:, None, :] - centres_arr[None]) ** 2).sum(-1)
        new = d2.argmin(axis=1)
        for c in range(k):  # an empty cluster takes the point farthest from its centre
            if not np.any(new == c):
                own = d2[np.arange(n), new]
                own[np.bincount(new, minlength=k)[new] <= 1] = -1.0  # never empty another cluster
                far = int(own.argmax())
                new[far] = c
        if np.array_equal(new, assign):
            break
        assign = new
        centres_arr = np.stack([x[assign == c].mean(axis=0) for c in range(k)])
    return centres_arr, assign


@dataclass
class Clusters:
    """The training set's clusters: for each cluster its class, members (training indices) and centre."""

    labels: np.ndarray  # (C,) class of each cluster
    members: list  # C arrays of indices into the training set
    assignment: np.ndarray  # (N,) cluster of each training sample
    centres: Optional[np.ndarray] = None  # (C, dim); None: unknown (neighbours at random)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def per_class(cls, labels: Sequence[int]) -> "Clusters":
        """One cluster per class, no centres (before the first k-means)."""
        labels = np.asarray(labels)
        classes, inverse = np.unique(labels, return_inverse=True)
        return cls(labels=classes, members=[np.flatnonzero(inverse == c) for c in range(len(classes))],
                   assignment=inverse.astype(np.int64))


def cluster_training_set(embeddings: np.ndarray, labels: Sequence[int], clusters_per_class: int,
                         seed: int) -> Clusters:
    """k-means with ``min(K, n_c)`` clusters in each class (in sorted class order, one seeded generator)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    cluster_labels, members, centres = [], [], []
    assignment = np.full(len(labels), -1, dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(clusters_per_class, len(idx))
        class_centres, assign = kmeans(embeddings[idx], k, rng)
        for j in range(k):
            assignment[idx[assign == j]] = len(members)
            members.append(idx[assign == j])
            cluster_labels.append(c)
            centres.append(class_centres[j])
    return Clusters(labels=np.asarray(cluster_labels), members=members, assignment=assignment,
                    centres=np.asarray(centres))


# -- loss ------------------------------------------------------------------------------------
def magnet_losses(embeddings: torch.Tensor, labels: torch.Tensor, clusters: torch.Tensor,
                  alpha: float, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample magnet loss of a batch whose sample b is in cluster ``clusters[b]`` (any integer ids).

    μ = the batch mean of each cluster's samples; σ² = Σ_b ‖r_b − μ(b)‖² / (B − 1);
    L_b = [‖r_b − μ(b)‖²/(2σ²) + α + log Σ_{batch clusters μ of classes ≠ y_b} exp(−‖r_b − μ‖²/(2σ²))]₊
    (0 when the batch has no cluster of another class). A cluster's class is its samples' label.
    """
    _, inverse = torch.unique(clusters, return_inverse=True)
    n_clusters, batch = int(inverse.max()) + 1, len(labels)
    counts = torch.bincount(inverse, minlength=n_clusters).to(embeddings.dtype)
    sums = embeddings.new_zeros(n_clusters, embeddings.shape[1]).index_add(0, inverse, embeddings)
    means = sums / counts[:, None]
    cluster_class = labels.new_zeros(n_clusters).scatter(0, inverse, labels)
    d2 = ((embeddings[:, None, :] - means[None, :, :]) ** 2).sum(-1)  # (B, clusters)
    own = d2.gather(1, inverse[:, None]).squeeze(1)
    variance = (own.sum() / max(batch - 1, 1)).clamp_min(eps)
    other = cluster_class[None, :] != labels[:, None]
    has_other = other.any(dim=1)
    logits = (-d2 / (2 * variance)).masked_fill(~other, float("-inf"))
    logits = logits.masked_fill(~has_other[:, None], 0.0)  # rows without impostors: finite, masked below
    per_sample = (own / (2 * variance) + alpha + torch.logsumexp(logits, dim=1)).clamp_min(0.0)
    return torch.where(has_other, per_sample, torch.zeros_like(per_sample))


# -- the method ------------------------------------------------------------------------------
class MagnetBatches:
    """Endless iterator of magnet batches: a seed cluster, its M − 1 nearest impostor clusters, D samples each.

    Reads ``method.clusters`` and the clusters' recent losses at every ``next()``.
    ``last_clusters`` holds the clusters of the latest batch, the seed first.
    """

    def __init__(self, method: "MagnetLoss", labels: Sequence[int], *, batch_size: int, m_per_class: int,
                 seed: int) -> None:
        if m_per_class < 1 or batch_size % m_per_class:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class})")
        self.method = method
        self.labels = np.asarray(labels)
        self.per_cluster = m_per_class
        self.num_clusters = batch_size // m_per_class
        n_classes = len(np.unique(self.labels))
        if n_classes < self.num_clusters:
            raise ConfigError(f"a magnet batch of {batch_size} with m_per_class={m_per_class} needs "
                              f"{self.num_clusters} classes, the training set has {n_classes}")
        self.rng = np.random.default_rng(seed)
        self.last_clusters: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        return self

    def __next__(self) -> list[int]:
        if self.method.clusters is None:
            self.method.set_clusters(Clusters.per_class(self.labels))
        clusters = self.method.clusters
        seed_cluster = int(self.rng.choice(len(clusters), p=self.method.seed_probabilities()))
        chosen = [seed_cluster] + self.method.nearest_impostors(seed_cluster, self.num_clusters - 1, self.rng)
        batch: list[int] = []
        for c in chosen:
            members = clusters.members[c]
            take = self.rng.choice(members, size=self.per_cluster, replace=len(members) < self.per_cluster)
            batch.extend(int(i) for i in take)
        self.last_clusters = chosen
        return batch


class MagnetLoss(Method):
    """Magnet loss with per-class k-means clusters, refreshed per epoch, and neighbourhood batches."""

    def __init__(self, alpha: float = 1.0, clusters_per_class: int = 2, refresh_epochs: int = 1,
                 distinct_classes: bool = True, loss_momentum: float = 0.5) -> None:
        super().__init__()
        self.alpha = alpha
        self.clusters_per_class = clusters_per_class
        self.refresh_epochs = max(1, int(refresh_epochs))
        self.distinct_classes = distinct_classes
        self.loss_momentum = loss_momentum
        self.clusters: Optional[Clusters] = None
        self.cluster_loss = np.zeros(0)  # recent loss of each cluster (NaN: not seen yet)
        self.sample_loss = np.zeros(0)  # last loss of each training sample (NaN: not seen yet)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, clusters_per_class={self.clusters_per_class}, "
                f"refresh_epochs={self.refresh_epochs}, distinct_classes={self.distinct_classes}")

    # -- clusters --------------------------------------------------------------------------
    def set_clusters(self, clusters: Clusters) -> None:
        """Install ``clusters``; each starts from the mean last loss of its samples (NaN if none seen)."""
        n = len(clusters.assignment)
        if len(self.sample_loss) != n:
            self.sample_loss = np.full(n, np.nan)
        loss = np.full(len(clusters), np.nan)
        for c, members in enumerate(clusters.members):
            seen = self.sample_loss[members]
            seen = seen[np.isfinite(seen)]
            if len(seen):
                loss[c] = seen.mean()
        self.clusters, self.cluster_loss = clusters, loss

    def refresh_clusters(self, embeddings: np.ndarray, labels: Sequence[int], seed: int) -> None:
        """k-means of each class of the training set on ``embeddings`` (training-set order)."""
        self.set_clusters(cluster_training_set(embeddings, labels, self.clusters_per_class, seed))

    def on_epoch_start(self, epoch: int, state: TrainingView) -> None:
        if (epoch - 1) % self.refresh_epochs == 0:
            self.refresh_clusters(state.embed_training_set(), state.train_set.labels, seed=state.seed * 1000 + epoch)

    def batch_sampler(self, labels: Any, *, batch_size: int, m_per_class: int,
                      seed: int) -> Iterator[list[int]]:
        # a new training set: forget the previous fold's clusters and losses
        self.clusters, self.cluster_loss, self.sample_loss = None, np.zeros(0), np.zeros(0)
        return MagnetBatches(self, labels, batch_size=batch_size, m_per_class=m_per_class, seed=seed)

    def seed_probabilities(self) -> np.ndarray:
        """P(seed cluster) ∝ recent loss; unseen clusters count with the mean known loss; uniform if none or all 0."""
        n = len(self.clusters)
        loss = self.cluster_loss.copy()
        known = np.isfinite(loss)
        if not known.any():
            return np.full(n, 1.0 / n)
        loss[~known] = loss[known].mean()
        loss = np.clip(loss, 0.0, None)
        total = loss.sum()
        return loss / total if total > 0 else np.full(n, 1.0 / n)

    def nearest_impostors(self, seed_cluster: int, count: int, rng: np.random.Generator) -> list[int]:
        """The ``count`` clusters of other classes nearest to the seed's centre (random order without centres).

        With ``distinct_classes`` at most one cluster per class (the nearest of that class).
        """
        clusters = self.clusters
        if clusters.centres is not None:
            d2 = ((clusters.centres - clusters.centres[seed_cluster]) ** 2).sum(axis=1)
            order = np.argsort(d2, kind="stable")
        else:
            order = rng.permutation(len(clusters))
        used = {clusters.labels[seed_cluster]}
        chosen: list[int] = []
        for c in order:
            if len(chosen) == count:
                break
            cls = clusters.labels[c]
            if cls == clusters.labels[seed_cluster] or (self.distinct_classes and cls in used):
                continue
            chosen.append(int(c))
            used.add(cls)
        if len(chosen) < count:
            raise ConfigError(f"magnet batches need {count} impostor clusters, only {len(chosen)} available")
        return chosen

    # -- loss ------------------------------------------------------------------------------
    def _batch_clusters(self, labels: torch.Tensor, indices: Optional[torch.Tensor]) -> Optional[np.ndarray]:
        """The training-set clusters of the batch samples, or None (then each class is one cluster)."""
        if indices is None or self.clusters is None:
            return None
        idx = indices.detach().cpu().numpy().astype(np.int64)
        assignment = self.clusters.assignment
        if idx.min(initial=0) < 0 or idx.max(initial=0) >= len(assignment):
            return None
        cid = assignment[idx]
        if np.any(self.clusters.labels[cid] != labels.detach().cpu().numpy()):
            return None  # indices that are not this training set's
        return cid

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        cid = self._batch_clusters(labels, indices)
        groups = labels if cid is None else torch.as_tensor(cid, device=labels.device)
        per_sample = magnet_losses(embeddings, labels, groups, self.alpha)
        if cid is not None and self.training:
            self._record(indices.detach().cpu().numpy().astype(np.int64), cid, per_sample.detach().cpu().numpy())
        return per_sample.mean()

    def _record(self, idx: np.ndarray, cid: np.ndarray, values: np.ndarray) -> None:
        """Update the samples' last losses and each batch cluster's moving-average loss."""
        self.sample_loss[idx] = values
        for c in np.unique(cid):
            value = float(values[cid == c].mean())
            old = self.cluster_loss[c]
            self.cluster_loss[c] = value if not np.isfinite(old) else \
                (1 - self.loss_momentum) * old + self.loss_momentum * value


@register_method(
    name="magnet", display_name="Magnet", source="Rippel et al., ICLR 2016",
    search_space={"alpha": Float(0.1, 5.0), "clusters_per_class": Int(1, 3)},
    defaults={"alpha": 1.0, "clusters_per_class": 2, "refresh_epochs": 1, "distinct_classes": True,
              "loss_momentum": 0.5},
)
def magnet(hp: dict, ctx: MethodContext) -> MagnetLoss:
    """[‖r − μ(r)‖²/2σ² + α + log Σ_{μ of other classes} e^{−‖r − μ‖²/2σ²}]₊ over per-class k-means clusters.

    Our own implementation (no PML class): K = ``clusters_per_class`` k-means clusters per class
    on the training-set embeddings, refreshed every ``refresh_epochs`` epochs; batches of
    M = batch_size / m_per_class clusters (a seed drawn ∝ its recent loss and its M − 1 nearest
    clusters of other classes) × D = m_per_class samples; μ and σ² (divisor M·D − 1) from the
    batch; unnormalised embeddings. Defaults α = 1, K = 2.
    """
    return MagnetLoss(alpha=hp["alpha"], clusters_per_class=hp["clusters_per_class"],
                      refresh_epochs=hp["refresh_epochs"], distinct_classes=hp["distinct_classes"],
                      loss_momentum=hp["loss_momentum"])
