"""The run record, torch-free and UI-free: the event schema (``events``), crash-safe writes (``atomic``), the
files other processes use to talk to a run's writer (``control``), the run folder on disk (``store``), the
read model every reader folds events with (``read_model``) and numpy-only confusion figures (``metrics``).

Import rules (import-linter contracts in pyproject.toml): nothing here imports torch, timm, Textual or Rich,
nor any other part of cifartui but its error types; numpy loads only inside the functions that read or write arrays.
"""
