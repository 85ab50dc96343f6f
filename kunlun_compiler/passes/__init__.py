"""Graph passes: each is a function Graph -> PassResult, run in order by `PassManager`."""
from .manager import PassManager, PassResult, PassReport
from .compskip import compskip, tower_depth, prune_readouts
from .batch_kernels import BATCH_RULES, BatchRule, batch_kernels
from .fuse import FUSION_RULES, FusionRule, fuse
from .select import select_kernels

GRAPH_PASSES = (compskip, tower_depth, prune_readouts, fuse, batch_kernels)   # target-independent
PIPELINE = GRAPH_PASSES + (select_kernels,)                      # kernels for the spec's target

__all__ = ["PassManager", "PassResult", "PassReport", "GRAPH_PASSES", "PIPELINE", "FUSION_RULES", "FusionRule",
           "BATCH_RULES", "BatchRule", "compskip", "tower_depth", "prune_readouts", "fuse", "batch_kernels",
           "select_kernels"]
