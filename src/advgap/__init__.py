"""advgap: the gap between first-order adversarial attacks and the exact closest adversarial example."""

__version__ = "0.1.0"
