"""kunlunc: a declarative compiler for Kunlun recommendation models."""
__version__ = "0.1.0"
