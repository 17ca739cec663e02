"""embedbench: train text encoders and score every view they expose."""

__version__ = "0.1.0"
