"""Methods: the registry and the losses of the leaderboard (one module each under ``library``)."""

from benchmark.methods.base import Method, MethodContext, PMLMethod
from benchmark.methods.registry import MethodSpec, get_method, list_methods, register_method, unregister_method
from benchmark.methods.search_space import Categorical, Float, Int

__all__ = [
    "Categorical", "Float", "Int", "Method", "MethodContext", "MethodSpec", "PMLMethod",
    "get_method", "list_methods", "register_method", "unregister_method",
]
