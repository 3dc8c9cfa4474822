"""The ways a registered method can train two modalities (``register_method(cross_modal=...)``).

* ``reference``: a pair- or tuple-based loss applied with the anchors of one modality against the
  references of the other, in both directions (pytorch-metric-learning's ``ref_emb`` / ``ref_labels``):
  L = loss(A -> B) + loss(B -> A), the lecture's L1 + L2 for a triplet loss;
* ``shared``: a proxy-based loss applied to each modality against the same proxies (one set of learnable
  class proxies that both towers are pulled to): L = loss(A; proxies) + loss(B; proxies);
* ``native``: the method is a cross-modal loss by construction (the bidirectional triplet) and runs on
  paired datasets only.
"""

CROSS_MODAL_MODES = ("reference", "shared", "native")
