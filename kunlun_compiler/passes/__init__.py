"""Graph passes: each is a function Graph -> PassResult, run in order by `PassManager`."""
from .manager import PassManager, PassResult, PassReport
from .compskip import compskip, tower_depth, prune_readouts
from .fuse import FUSION_RULES, FusionRule, fuse
from .select import select_kernels

PIPELINE = (compskip, tower_depth, prune_readouts, fuse, select_kernels)

__all__ = ["PassManager", "PassResult", "PassReport", "PIPELINE", "FUSION_RULES", "FusionRule",
           "compskip", "tower_depth", "prune_readouts", "fuse", "select_kernels"]
