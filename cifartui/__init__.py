"""cifartui: a terminal experiment manager for training timm image classifiers."""

__version__ = "0.1.0"
