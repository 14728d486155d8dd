"""Entropy coding: fixed probability tables (``tables``) and the constriction range coder (``coder``)."""
