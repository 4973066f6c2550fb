"""vitsearch.evaluators: complexity (``complexity``) and accuracy estimates, chosen by name."""

from .base import BaseEvaluator, EvaluationFailed, get_evaluator, list_evaluators, register_evaluator

__all__ = ["BaseEvaluator", "EvaluationFailed", "get_evaluator", "list_evaluators", "register_evaluator"]
