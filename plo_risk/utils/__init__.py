"""Helpers every stage may use: atomic writes, typed configuration files, shipped
data files and the scikit-learn internals the package relies on (in one place)."""
