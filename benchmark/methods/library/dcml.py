"""DCML — Deep Causal Metric Learning (Deng & Zhang, ICML 2022): IRM over inferred environments with attention.

Model (``DCMLModel``, built by ``DCML.configure_model``)
-------------------------------------------------------
f = trunk.feature_map(x) ∈ R^{B×C×H×W}. E environments j = 1..E each own an attention T_j with
weights θ_j = (S1_j, S2_j, C1_j, C2_j), all bias-free Linear layers (as in the authors' ``ATM``/``ATL``):

* spatial: m = mean_c f ∈ R^{B×HW};  a = σ(S2_j · relu(S1_j · m)) (S1, S2: HW×HW);  f' = f ⊙ a;
* channel: u = avgpool(f') ∈ R^{B×C}; b = σ(C2_j · relu(C1_j · u)) (C1: C→C/2, C2: C/2→C); f'' = f' ⊙ b.

A shared head h = Linear_{C→D} ∘ BatchNorm1d ∘ avgpool gives z_j = h(T_j(f)). An extra ERM branch has
its own attention T_erm (same architecture) and the same shared head. Test time (``DCMLModel.forward``):
the attention with the averaged weights θ̄ = (1/E) Σ_j θ_j (per matrix, as the authors' ``train=0``
path), the shared head, and an L2-normalised output; the ERM branch is not used.

Losses (``DCML.training_step``)
-------------------------------
CosFace logits l = s · (cos(z, p_k) − m · [k = y]) with L2-normalised z and class proxies P ∈ R^{K×D}
(shared by the environments; the ERM branch has its own proxies). Per-sample ℓ_i = CE(l_i, y_i).
Environment weights w = softmax_E(Ω) ∈ R^{N_train×E}, Ω a logit table over the fold's training images
(read with the batch ``indices``, detached; uniform before the first inference). With w_ij:

    L_env,j = Σ_i w_ij ℓ_ij / Σ_i w_ij
    P_j     = ‖∂/∂c L_env,j(c) at c = 1‖²,   L_env,j(c) = Σ_i w_ij CE(l_ij ⊙ c, y_i) / Σ_i w_ij,  c ∈ R^K
              (IRMv1 with one dummy scale per class, ``create_graph=True``: ``irm_penalty``)
    R_θ     = mean over j and the 4 matrices W of (‖W_j − W̄‖₂ / ‖W_j‖₁)²     (``attention_divergence``)
    R_j     = Σ_i w_ij ‖z_ij − z̄_{y_i}‖² / Σ_i w_ij,  z̄_y the batch mean of z_j over class y, detached
    L       = mean_j L_env,j + α mean_j P_j + β R_θ + γ mean_j R_j + L_erm,   L_erm = mean_i CE(l^erm_i, y_i)

R_j uses the head output z before L2 normalisation, as the authors' ``RegLoss``. "Normalised by its
size" (``docs/explanation/seed-methods.md``) is the authors' ``at_reg``: the Frobenius distance divided by the
matrix's L1 norm.

Environment inference (``DCML.on_epoch_start``)
-----------------------------------------------
Before training (the trainer's epoch 1) and then every ``env_interval`` passes over the fold's training
data (the authors' epochs: 5 on CUB and Cars, 10 on SOP), with the networks in eval mode and frozen: Ω is
re-drawn from N(0, 1) (generator seeded with ``state.seed + epoch``), every training image
(``state.train_eval_set``) is visited once, in a seeded random order, in batches of
``state.cfg.batch_size`` (one epoch of the fold's training data, as the method asks), and Adam (lr
``env_lr`` = 0.5) takes one step per batch (``env_passes`` passes) to MAXIMISE

    O(w) = mean_j [ P_j(w) + ‖∂_{c_ch} L_env,j‖² + ‖∂_{c_sp} L_env,j‖² ]

where c_ch ∈ R^C and c_sp ∈ R^{H×W} are dummy scales (at 1) on the attended feature map T_j(f) (the
authors' ``max_invat``; both coefficients 1, their ``maxw_cof = maxat_cof = 1``).

Cheap form. With frozen nets in eval mode (BatchNorm on running statistics, so samples are independent),
each of the three gradients is Σ_i w_ij g_ij / Σ_i w_ij with per-sample gradients g_ij that do not
depend on w: for the logit dummy g_ij = (softmax(l_ij) − onehot(y_i)) ⊙ l_ij (closed form), for the map
dummies g^ch_ij[k] = Σ_hw G_ij[k,h,w] a_ij[k,h,w] and g^sp_ij[h,w] = Σ_k G_ij a_ij with a_ij = T_j(f_i),
G_ij = ∂ℓ_ij/∂a_ij (one backward through the head only). Hence each penalty is
‖Σ_i w_ij g_ij‖² / (Σ_i w_ij)² = w_jᵀ K_j w_j / (1ᵀ w_j)² with the B×B Gram matrix
K_j = G_logit G_logitᵀ + G_ch G_chᵀ + G_sp G_spᵀ. The nets run once per batch to build the K_j
(``penalty_grams``); the Adam steps on Ω only touch these small matrices (``environment_objective``).

Authors' values (github.com/Xiang-Deng-DL/DCML, ``train.sh``; BN-Inception at 227 px, 7×7 maps,
D = 128, RMSprop, trunk lr 1e-6, frozen trunk BatchNorm)
-----------------------------------------------------------------------------------------
=====  ======  ======  ======  =====  ======  ========  ====================
data   α       β       γ       s      m       proxy lr  E, env interval
=====  ======  ======  ======  =====  ======  ========  ====================
CUB    1e-4    1e-2    1e-1    100    0.6182  2.53e-3   2, 5 epochs
Cars   1e-5    1e-2    1e-4    161.5  0.6182  7.41e-3   2, 5 epochs
SOP    1e-4    1e-2    1e-6    100    0.3364  2.16e-3   2, 10 epochs (B=64, 2 per class)
=====  ======  ======  ======  =====  ======  ========  ====================

(The authors' Cars script passes s = 161.5 and ``--margin 0.4324``, but its learner builds the CosFace
heads with the scale only (``CosNet(scale=conf.scale, ...)``), so the Cars runs trained with the class's
default margin 0.6182, the CUB value; ``docs/explanation/seed-methods.md`` gives s = 100 for Cars.)
Attention lr 2e-6 = 2× trunk lr; head lr = trunk lr. Defaults here: the CUB values.

Search space (``docs/explanation/seed-methods.md``): α [1e-6, 1e-3] log, β [1e-3, 1e-1] log, γ [1e-6, 1e-1] log,
E ∈ {2, 3, 4};
s [50, 200] log (geometric centre 100, covers Cars' 161.5), m [0.32, 0.92] (centre 0.62, covers
SOP's 0.34 and Cars' 0.43), ``loss_lr`` (both proxy sets) [1e-6, 1] log, default 2.53e-3.
Fixed (not searched): ``env_interval`` 5 (set it per dataset, e.g. 10 on SOP as the authors do, with the
dataset's ``method_params: {dcml: {env_interval: 10}}``; ``configs/reality-check.yaml`` does), ``env_passes``
1, ``env_lr`` 0.5, ``input_size`` 0 (auto).

Feature-map size. The spatial layers are HW×HW, so H, W must be known when the model is built
(the trainer builds the optimizer right after ``configure_model``). ``configure_model`` runs the trunk
once (eval mode, no grad) on a 1×3×S×S zero image, S = ``input_size``, or when 0 (default) S = 32
for a ``SmallCNN`` (4×4 maps) and 227 for the torchvision trunks (the harness's and the authors' crop;
GoogLeNet 7×7, ResNet-50 8×8); a ``CachedTrunk`` (frozen regime) gives a zero cached output instead
(``trunk.example_input``), so the attention is over the cached grid. If a batch's map differs from that
grid (another image size), the channel-mean map is adaptively average-pooled to the grid before the
spatial layers and the spatial attention is resized back to the batch's map bilinearly (not in the
authors' code, which hard-codes 7×7).

Deviations from the authors' code
---------------------------------
* Learning rates: the trainer puts every model parameter outside ``model.trunk`` (attentions and
  head) in its ``embedder`` group (``lr_embedder``), so the attentions do not get their own 2× trunk
  lr (the trainer is generic; a parameter cannot be in two optimizer groups). Both proxy sets are
  the method's parameters (``loss_lr``, no weight decay, as every method's loss parameters here).
* Inference: the authors use the training transform (random crops) and class-balanced batches of 64;
  here the eval-transform images (``train_eval_set``) in a random order, ``cfg.batch_size`` per batch,
  each image once. Their weight learner is configured for 5 passes but returns after the first (the
  ``return`` sits inside its epoch loop): ``env_passes`` = 1 reproduces that. Their Adam LR schedule
  never takes effect.
* The trainer's epochs are ``iterations_per_epoch`` batches, not passes over the data: inference runs at
  the start of the first trainer epoch at or after each multiple of ``env_interval`` passes (counted in
  training images drawn, iterations × batch size), so the interval means what the authors' does
  whatever the dataset's size (``inference_due``).
* Proxies are a (K×D) parameter initialised like their bias-free ``nn.Linear``; the head BatchNorm is
  ``BatchNorm1d`` on the pooled features (= their ``BatchNorm2d`` on the 1×1 map).
* ``forward(embeddings, labels, indices)`` (the generic loss on ready-made embeddings, used by the
  generic tests and by a model that is not a ``DCMLModel``) is the same objective with every
  environment and the ERM branch on the given embeddings (no attention, so no β term). The trainer
  uses ``training_step``, which runs the attentions on the trunk's feature map.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.checks import check_int
from benchmark.data.batch import gather
from benchmark.errors import ConfigError
from benchmark.methods.base import Method, MethodContext, TrainingView
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Categorical, Float
from benchmark.models.embedding_model import TrunkModel
from benchmark.models.trunks import SmallCNN, Trunk

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


# ---------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------
def cosface_logits(embeddings: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor,
                   scale: float, margin: float) -> torch.Tensor:
    """s · (cos(z_i, p_k) − m · [k = y_i]) with L2-normalised embeddings and proxies (B × K)."""
    cos = F.normalize(embeddings, dim=1) @ F.normalize(proxies, dim=1).t()
    onehot = F.one_hot(labels, num_classes=proxies.shape[0]).to(cos.dtype)
    return scale * (cos - margin * onehot)


def _weights_or_ones(logits: torch.Tensor, sample_weights: Optional[torch.Tensor]) -> torch.Tensor:
    if sample_weights is None:
        return torch.ones(logits.shape[0], dtype=logits.dtype, device=logits.device)
    return sample_weights.to(logits.dtype)


def irm_penalty(logits: torch.Tensor, labels: torch.Tensor,
                sample_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """IRMv1: ‖∂L(c)/∂c at c = 1‖², L(c) = Σ_i w_i CE(l_i ⊙ c, y_i) / Σ_i w_i, one dummy c_k per class.

    Computed with autograd (``create_graph`` when grad mode is on, so the penalty back-propagates into
    the logits and the network); also works under ``torch.no_grad`` (then it is a plain value).
    """
    create_graph = torch.is_grad_enabled()
    w = _weights_or_ones(logits, sample_weights)
    with torch.enable_grad():
        c = torch.ones(1, logits.shape[1], dtype=logits.dtype, device=logits.device, requires_grad=True)
        losses = F.cross_entropy(logits * c, labels, reduction="none")
        loss = (losses * w).sum() / w.sum()
        (grad,) = torch.autograd.grad(loss, [c], create_graph=create_graph)
    return (grad ** 2).sum()


def irm_sample_gradients(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample ∂CE(l_i ⊙ c, y_i)/∂c at c = 1 in closed form: (softmax(l_i) − onehot(y_i)) ⊙ l_i (B × K)."""
    onehot = F.one_hot(labels, num_classes=logits.shape[1]).to(logits.dtype)
    return (torch.softmax(logits, dim=1) - onehot) * logits


def class_centre_penalty(z: torch.Tensor, labels: torch.Tensor,
                         sample_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Σ_i w_i ‖z_i − z̄_{y_i}‖² / Σ_i w_i, z̄_y the (unweighted, detached) batch mean of class y."""
    w = _weights_or_ones(z, sample_weights)
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.shape[0], z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, inverse, z)
    means = (sums / counts.unsqueeze(1).to(z.dtype)).detach()[inverse]
    return (((z - means) ** 2).sum(1) * w).sum() / w.sum()


def weighted_quadratic(gram: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """‖Σ_i w_i g_i‖² / (Σ_i w_i)² written with the Gram matrix K = G Gᵀ: wᵀ K w / (1ᵀ w)²."""
    return (w @ gram @ w) / w.sum() ** 2


def environment_objective(grams: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The inference objective of one batch: mean_j w_jᵀ K_j w_j / (1ᵀ w_j)²; grams E×B×B, weights B×E."""
    return torch.stack([weighted_quadratic(grams[j], weights[:, j]) for j in range(grams.shape[0])]).mean()


# ---------------------------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------------------------
def attend(fmap: torch.Tensor, weights: Weights, grid: tuple[int, int]) -> torch.Tensor:
    """Spatial then channel attention on ``fmap`` (B×C×H×W) with bias-free weights (S1, S2, C1, C2).

    ``grid`` is the (H, W) the spatial layers were built for; another map size is pooled to it and the
    spatial attention resized back (bilinear).
    """
    s1, s2, c1, c2 = weights
    b, c, h, w = fmap.shape
    m = fmap.mean(dim=1, keepdim=True)
    resized = (h, w) != tuple(grid)
    if resized:
        m = F.adaptive_avg_pool2d(m, grid)
    spatial = torch.sigmoid(F.linear(F.relu(F.linear(m.flatten(1), s1)), s2)).view(b, 1, *grid)
    if resized:
        spatial = F.interpolate(spatial, size=(h, w), mode="bilinear", align_corners=False)
    out = fmap * spatial
    channel = torch.sigmoid(F.linear(F.relu(F.linear(out.mean(dim=(2, 3)), c1)), c2))
    return out * channel.view(b, c, 1, 1)


class DCMLAttention(nn.Module):
    """One environment's attention: spatial (HW→HW→HW) then channel (C→C/2→C), bias-free layers."""

    def __init__(self, channels: int, grid: tuple[int, int]) -> None:
        super().__init__()
        positions = grid[0] * grid[1]
        hidden = max(1, channels // 2)
        self.grid = (int(grid[0]), int(grid[1]))
        self.spatial1 = nn.Linear(positions, positions, bias=False)
        self.spatial2 = nn.Linear(positions, positions, bias=False)
        self.channel1 = nn.Linear(channels, hidden, bias=False)
        self.channel2 = nn.Linear(hidden, channels, bias=False)

    def weights(self) -> Weights:
        return (self.spatial1.weight, self.spatial2.weight, self.channel1.weight, self.channel2.weight)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return attend(fmap, self.weights(), self.grid)


class DCMLModel(TrunkModel):
    """Trunk, E environment attentions, the ERM-branch attention and the shared head.

    ``forward(x)`` (evaluation) = L2-normalised head(T_θ̄(trunk.feature_map(x))) with the averaged weights.
    """

    def __init__(self, trunk: Trunk, *, embedding_dim: int, n_envs: int, grid: tuple[int, int],
                 freeze_bn: bool = False) -> None:
        super().__init__(trunk, freeze_bn=freeze_bn)
        channels = trunk.channels
        self.grid = (int(grid[0]), int(grid[1]))
        self.attentions = nn.ModuleList(DCMLAttention(channels, self.grid) for _ in range(n_envs))
        self.erm_attention = DCMLAttention(channels, self.grid)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(channels),
                                  nn.Linear(channels, embedding_dim))
        self.embedding_dim = embedding_dim

    @property
    def n_envs(self) -> int:
        return len(self.attentions)

    def averaged_weights(self) -> Weights:
        """θ̄: each of the four weight matrices averaged over the environments."""
        per_env = [att.weights() for att in self.attentions]
        return tuple(torch.stack([w[k] for w in per_env]).mean(0) for k in range(4))  # type: ignore[return-value]

    def attend(self, fmap: torch.Tensor, env: int) -> torch.Tensor:
        return self.attentions[env](fmap)

    def attend_erm(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.erm_attention(fmap)

    def attend_mean(self, fmap: torch.Tensor) -> torch.Tensor:
        return attend(fmap, self.averaged_weights(), self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.attend_mean(self.trunk.feature_map(x))), dim=1)


def feature_grid(trunk: Trunk, input_size: int = 0) -> tuple[int, int]:
    """(H, W) of the trunk's map for a square input of ``input_size`` (0: 32 for SmallCNN, else 227)."""
    size = int(input_size) or (32 if isinstance(trunk, SmallCNN) else 227)
    was_training = trunk.training
    trunk.eval()
    try:
        with torch.no_grad():
            fmap = trunk.feature_map(trunk.example_input(size))
    finally:
        trunk.train(was_training)
    return int(fmap.shape[2]), int(fmap.shape[3])


# ---------------------------------------------------------------------------------------------
# method
# ---------------------------------------------------------------------------------------------
class DCML(Method):
    """The DCML objective (module docstring), its model head, and the environment inference."""

    def __init__(self, *, num_classes: int, embedding_dim: int, alpha: float, beta: float, gamma: float,
                 n_envs: int, scale: float, margin: float, loss_lr: float, env_interval: int = 5,
                 env_passes: int = 1, env_lr: float = 0.5, input_size: int = 0) -> None:
        super().__init__()
        self.num_classes, self.embedding_dim = int(num_classes), int(embedding_dim)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.n_envs = int(n_envs)
        self.scale, self.margin = float(scale), float(margin)
        self.loss_lr = loss_lr
        env_interval = check_int("DCML's env_interval", env_interval, 1, 100_000)
        env_passes = check_int("DCML's env_passes", env_passes, 1, 1_000)
        if isinstance(env_lr, bool) or not isinstance(env_lr, (int, float)) or not env_lr > 0:
            raise ConfigError(f"DCML's env_lr must be a positive number, got {env_lr!r}")
        #: Passes over the fold's training data between two environment inferences (the authors' epochs).
        self.env_interval, self.env_passes = env_interval, env_passes
        self.env_lr, self.input_size = float(env_lr), int(input_size)
        self.proxies = nn.Parameter(self._init_proxies())
        self.erm_proxies = nn.Parameter(self._init_proxies())
        #: Ω, the environment logit table over the fold's training images (None: uniform weights).
        self.env_logits: Optional[torch.Tensor] = None
        #: Objective before / after the last inference (mean over its batches), for logs and tests.
        self.last_inference: dict[str, float] = {}

    def _init_proxies(self) -> torch.Tensor:
        weight = torch.empty(self.num_classes, self.embedding_dim)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's default, as the authors' CosNet
        return weight

    # -- model ---------------------------------------------------------------------------------
    def configure_model(self, model: TrunkModel) -> TrunkModel:
        """A ``DCMLModel`` on ``model.trunk`` (its embedder is dropped); idempotent."""
        if isinstance(model, DCMLModel):
            return model
        trunk = model.trunk
        grid = feature_grid(trunk, self.input_size)
        out = DCMLModel(trunk, embedding_dim=self.embedding_dim, n_envs=self.n_envs, grid=grid,
                        freeze_bn=model.freeze_bn)
        param = next(trunk.parameters(), None)
        if param is not None:
            out.to(param.device)
        return out.train(model.training)

    # -- environment weights -------------------------------------------------------------------
    def environment_weights(self, indices: Optional[torch.Tensor], batch: int, *, device: torch.device,
                            dtype: torch.dtype) -> torch.Tensor:
        """softmax_E(Ω[indices]) (B × E, detached); uniform without a table or indices."""
        if self.env_logits is None or indices is None:
            return torch.full((batch, self.n_envs), 1.0 / self.n_envs, device=device, dtype=dtype)
        idx = torch.as_tensor(indices, device=self.env_logits.device, dtype=torch.long)
        return torch.softmax(self.env_logits[idx], dim=1).to(device=device, dtype=dtype)

    # -- losses --------------------------------------------------------------------------------
    def _objective(self, z_envs: Sequence[torch.Tensor], z_erm: torch.Tensor, labels: torch.Tensor,
                   indices: Optional[torch.Tensor]) -> torch.Tensor:
        w = self.environment_weights(indices, labels.shape[0], device=z_erm.device, dtype=z_erm.dtype)
        env_losses, penalties, centres = [], [], []
        for j, z in enumerate(z_envs):
            logits = cosface_logits(z, self.proxies, labels, self.scale, self.margin)
            wj = w[:, j]
            env_losses.append((F.cross_entropy(logits, labels, reduction="none") * wj).sum() / wj.sum())
            penalties.append(irm_penalty(logits, labels, wj))
            centres.append(class_centre_penalty(z, labels, wj))
        erm = F.cross_entropy(cosface_logits(z_erm, self.erm_proxies, labels, self.scale, self.margin), labels)
        return (torch.stack(env_losses).mean() + self.alpha * torch.stack(penalties).mean()
                + self.gamma * torch.stack(centres).mean() + erm)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The objective on ready-made embeddings (every branch sees them; no attention, no β term)."""
        return self._objective([embeddings] * self.n_envs, embeddings, labels, indices)

    @staticmethod
    def attention_divergence(model: DCMLModel) -> torch.Tensor:
        """mean over environments j and matrices W of (‖W_j − W̄‖₂ / ‖W_j‖₁)² (the authors' ``at_reg``)."""
        mean = model.averaged_weights()
        terms = [((w - m).norm(p=2) / w.abs().sum()) ** 2
                 for att in model.attentions for w, m in zip(att.weights(), mean)]
        return torch.stack(terms).mean()

    def training_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      indices: torch.Tensor) -> torch.Tensor:
        if not isinstance(model, DCMLModel):  # configure_model was not used: the loss on embeddings
            return self(model(images), labels, indices)
        fmap = model.trunk.feature_map(images)
        z_envs = [model.head(model.attend(fmap, j)) for j in range(model.n_envs)]
        z_erm = model.head(model.attend_erm(fmap))
        return self._objective(z_envs, z_erm, labels, indices) + self.beta * self.attention_divergence(model)

    # -- environment inference -----------------------------------------------------------------
    def penalty_grams(self, model: DCMLModel, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """E × B × B Gram matrices K_j of the per-sample dummy-scale gradients (model in eval mode)."""
        proxies = self.proxies.detach()
        with torch.no_grad():
            fmap = model.trunk.feature_map(images)
        grams = []
        for j in range(model.n_envs):
            with torch.no_grad():
                attended = model.attend(fmap, j)
            attended = attended.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = cosface_logits(model.head(attended), proxies, labels, self.scale, self.margin)
                losses = F.cross_entropy(logits, labels, reduction="none")
                (grad_map,) = torch.autograd.grad(losses.sum(), [attended])
            with torch.no_grad():
                g_logit = irm_sample_gradients(logits.detach(), labels)
                prod = grad_map * attended.detach()
                g_channel = prod.sum(dim=(2, 3))
                g_spatial = prod.sum(dim=1).flatten(1)
                grams.append(g_logit @ g_logit.t() + g_channel @ g_channel.t() + g_spatial @ g_spatial.t())
        return torch.stack(grams)

    def infer_environments(self, model: DCMLModel, images: Any, *, batch_size: int, device: torch.device,
                           seed: int) -> torch.Tensor:
        """Re-draw Ω and maximise the inference objective over ``images`` (an ``ImageSet``); returns Ω."""
        gen = torch.Generator().manual_seed(int(seed))
        n = len(images)
        init = torch.randn(n, self.n_envs, generator=gen)
        order = torch.randperm(n, generator=gen)
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]  # every training image once
        was_training = model.training
        model.eval()
        try:
            grams = []
            for idx in batches:
                x, y, _ = gather(images, idx).to(device)
                grams.append(self.penalty_grams(model, x, y).double())
        finally:
            model.train(was_training)
        batches = [idx.to(device) for idx in batches]
        table = init.to(device=device, dtype=torch.float64).requires_grad_(True)

        def objective() -> float:
            with torch.no_grad():
                return float(torch.stack([environment_objective(k, torch.softmax(table[idx], dim=1))
                                          for idx, k in zip(batches, grams)]).mean())

        before = objective()
        optimizer = torch.optim.Adam([table], lr=self.env_lr)
        for _ in range(max(1, self.env_passes)):
            for idx, k in zip(batches, grams):
                optimizer.zero_grad()
                (-environment_objective(k, torch.softmax(table[idx], dim=1))).backward()
                optimizer.step()
        self.last_inference = {"objective_before": before, "objective_after": objective(),
                               "batches": float(len(batches)), "images": float(n)}
        self.env_logits = table.detach().float()
        return self.env_logits

    def inference_due(self, epoch: int, iteration: int, *, iterations_per_epoch: int, batch_size: int,
                      n_train: int) -> bool:
        """Whether trainer epoch ``epoch`` (starting after ``iteration`` batches) begins with an inference.

        Epoch 1 does; a later epoch does when the training images drawn so far (``iteration`` ×
        ``batch_size``) reached a multiple of ``env_interval`` × ``n_train`` (passes over the fold's
        training data) during the previous epoch.
        """
        if epoch <= 1:
            return True
        period = self.env_interval * max(1, n_train)
        now = iteration * batch_size
        before = max(0, iteration - iterations_per_epoch) * batch_size
        return now // period > before // period

    def on_epoch_start(self, epoch: int, state: TrainingView) -> None:
        """Environment inference before training and every ``env_interval`` passes over the training data."""
        model = state.model
        if not isinstance(model, DCMLModel) or not self.inference_due(
                epoch, int(state.iteration), iterations_per_epoch=int(state.cfg.iterations_per_epoch),
                batch_size=int(state.cfg.batch_size), n_train=len(state.train_eval_set)):
            return
        self.infer_environments(model, state.train_eval_set, batch_size=int(state.cfg.batch_size),
                                device=torch.device(state.device), seed=int(state.seed) + int(epoch))


@register_method(
    name="dcml", display_name="DCML", source="Deng & Zhang, ICML 2022",
    search_space={"alpha": Float(1e-6, 1e-3, log=True), "beta": Float(1e-3, 1e-1, log=True),
                  "gamma": Float(1e-6, 1e-1, log=True), "n_envs": Categorical([2, 3, 4]),
                  "scale": Float(50.0, 200.0, log=True), "margin": Float(0.32, 0.92),
                  "loss_lr": Float(1e-6, 1.0, log=True)},
    defaults={"alpha": 1e-4, "beta": 1e-2, "gamma": 1e-1, "n_envs": 2, "scale": 100.0, "margin": 0.6182,
              "loss_lr": 2.53e-3, "env_interval": 5, "env_passes": 1, "env_lr": 0.5,
              "input_size": 0},
    needs_num_classes=True, has_parameters=True, needs_spatial_map=True,
)
def dcml(hp: dict, ctx: MethodContext) -> DCML:
    """IRM over inferred environments with per-environment attention on the trunk's feature map, a shared
    CosFace head, an ERM branch, and the averaged attention at test time (see the module docstring)."""
    return DCML(num_classes=ctx.num_classes, embedding_dim=ctx.embedding_dim, alpha=hp["alpha"], beta=hp["beta"],
                gamma=hp["gamma"], n_envs=int(hp["n_envs"]), scale=hp["scale"], margin=hp["margin"],
                loss_lr=hp["loss_lr"], env_interval=hp["env_interval"], env_passes=hp["env_passes"],
                env_lr=hp["env_lr"], input_size=int(hp["input_size"]))
