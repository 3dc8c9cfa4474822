"""ProxyNCA++ (Teh, DeVries, Taylor, ECCV 2020): ProxyNCA with the fixes of that paper, and its model head."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import nn

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float
from benchmark.models.trunks import Trunk, WrappedTrunk


class ProxyNCAPlusPlusLoss(losses.ProxyNCALoss):
    """PML's ``ProxyNCALoss`` with the softmax taken in log space.

    Same value as the parent where the parent is defined: −log softmax(−scale · ‖x̂ − p̂‖²) at the
    sample's own proxy, the denominator over all proxies *including* the positive one (ProxyNCA++'s
    choice; PML's parent already does this). The parent computes the probability and drops the
    samples where it underflows to 0 (the hardest ones, reachable at low temperature); here every
    sample counts.
    """

    def nca_computation(self, query, reference, query_labels, reference_labels, indices_tuple):
        dtype = query.dtype
        weights = lmu.convert_to_weights(indices_tuple, query_labels, dtype=dtype, using_ref=True)
        mat = self.distance(query, reference)
        if not self.distance.is_inverted:
            mat = -mat
        same = query_labels.unsqueeze(1) == reference_labels.unsqueeze(0)
        log_prob = torch.log_softmax(self.softmax_scale * mat, dim=1)
        log_pos = torch.logsumexp(log_prob.masked_fill(~same, c_f.neg_inf(dtype)), dim=1)
        return {"loss": {"losses": -log_pos * weights, "indices": c_f.torch_arange_from_size(query),
                         "reduction_type": "element"}}


class GlobalMaxPoolLayerNorm(nn.Module):
    """Global max pooling of a B x C x H x W map, then LayerNorm over C without affine parameters."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(num_channels, elementwise_affine=False)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.amax(fmap, dim=(2, 3)))


class RepooledTrunk(WrappedTrunk):
    """A trunk whose pooling is replaced by ``pooling`` (to one value per channel); ``feature_map`` is the
    wrapped trunk's, ``out_dim`` its channel count."""

    def __init__(self, trunk: Trunk, pooling: nn.Module) -> None:
        super().__init__(trunk)
        self.pooling = pooling
        self.out_dim = trunk.channels

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pooling(fmap)


class ProxyNCAPlusPlus(PMLMethod):
    """The ProxyNCA++ loss, plus its head: global max pooling and a LayerNorm without affine."""

    def configure_model(self, model: nn.Module) -> nn.Module:
        """Wrap ``model.trunk`` so that it pools with ``GlobalMaxPoolLayerNorm`` (idempotent).

        The trunk's parameters move under ``model.trunk.trunk``: load pretrained trunk weights
        before calling this hook.
        """
        if not isinstance(model.trunk, RepooledTrunk):
            model.trunk = RepooledTrunk(model.trunk, GlobalMaxPoolLayerNorm(model.trunk.channels))
            embedder = getattr(model, "embedder", None)
            if isinstance(embedder, nn.Linear) and embedder.in_features != model.trunk.out_dim:
                # the trunk pooled wider than one value per channel (a flattened grid of cached
                # outputs): a new embedder for the re-pooled width
                model.embedder = nn.Linear(model.trunk.out_dim, embedder.out_features).to(embedder.weight.device)
        return model


@register_method(
    name="proxy_nca_pp", display_name="ProxyNCA++", source="Teh et al., ECCV 2020",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "softmax_scale": Float(1.0, 81.0, log=True)},
    defaults={"loss_lr": 1e-2, "softmax_scale": 9.0},
    needs_num_classes=True, has_parameters=True,
    warmup_epochs=1,
)
def proxy_nca_pp(hp: dict, ctx: MethodContext) -> ProxyNCAPlusPlus:
    """ProxyNCA with the paper's changes: low temperature, positive proxy in the denominator, max pooling
    + LayerNorm, fast-moving proxies, warm-up with a frozen trunk.

    - Low temperature: embeddings and proxies L2-normalised and scaled by 3, i.e.
      −‖3x̂ − 3p̂‖² = −9‖x̂ − p̂‖²: ``softmax_scale`` = 1/T = 9 (the paper's T = 1/9) on PML's
      squared distance of normalised vectors. Searched in [1, 81] (log, 9 at its geometric centre).
    - Positive proxy in the denominator: PML's ``ProxyNCALoss`` already keeps it (checked in
      tests/methods/test_formulas.py); ``ProxyNCAPlusPlusLoss`` only moves the softmax to log
      space so that no sample is silently dropped at low temperature.
    - Global max pooling and LayerNorm without affine after pooling: ``configure_model`` replaces
      the trunk's pooling (``RepooledTrunk`` + ``GlobalMaxPoolLayerNorm``).
    - Fast-moving proxies: the paper gives the proxies about 10⁵x the backbone's learning rate with
      Adam (eps = 1). Our proxies use the protocol's RMSprop (normalised steps, default eps), where
      that ratio would make each proxy coordinate (initialised N(0, 1)) jump by ~0.1 per step; the
      default ``loss_lr`` = 1e-2 (10⁴x the protocol's trunk learning rate of 1e-6) keeps them
      orders of magnitude faster than the trunk, and the search covers [1e-6, 1] (log).
    - Warm-up: ``warmup_epochs=1`` in the registry entry makes the trainer freeze the trunk for that
      many epochs while
      the embedder and the proxies train, as in the paper.
    Not adopted: the paper's Adam optimiser (the protocol fixes RMSprop for every method).
    """
    loss = ProxyNCAPlusPlusLoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                                softmax_scale=hp["softmax_scale"])
    return ProxyNCAPlusPlus(loss, loss_lr=hp["loss_lr"])
