"""Bringing spilled pods home when home has had room for them for a while (repatriation)."""
