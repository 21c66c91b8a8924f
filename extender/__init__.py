"""Spillover: run pods at home while they fit, in a peer cluster when they do not."""

__version__ = "0.1.0"
