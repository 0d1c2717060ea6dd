"""Gome: an MLE agent that treats its work as gradient-based optimization.

Structured diagnosis is the gradient, a shared success memory is momentum, and
several traces running at once are distributed optimization
(arXiv 2603.01692, "Reasoning as Gradient: Scaling MLE Agents Beyond Tree Search").
"""

__version__ = "0.1.0"
