"""Thin async access to Kubernetes apiservers: raw JSON in, msgspec models out."""
