"""Leaf utilities every layer may use.

Today: ``common.cli``, the one way scripts parse their arguments (one-line errors, exit 2).
"""
