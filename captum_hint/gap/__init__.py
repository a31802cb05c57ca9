"""gAP (Cheng et al., TPAMI): a decision explained as a tree of supporting channels, layer by layer.

The attribution itself, :class:`~captum_hint.attr.LayerActivationPropagation`,
lives in :mod:`captum_hint.attr`; this package builds the evidence trees, draws
them, and holds the paper's diagnostics.
"""

from .decomposition import (HierarchicalDecomposition, Selection, chosen_channel_shares, chosen_children_map,
                            label_with_concepts, select_children)
from ..core.stages import forward_order, stage_layers
from .tree import EvidenceNode, load_tree, save_tree

__all__ = [
    "EvidenceNode",
    "HierarchicalDecomposition",
    "Selection",
    "chosen_channel_shares",
    "chosen_children_map",
    "forward_order",
    "label_with_concepts",
    "load_tree",
    "save_tree",
    "select_children",
    "stage_layers",
]
