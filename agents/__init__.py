"""Agents that choose learning rates, and the command-line helpers the scripts use."""
