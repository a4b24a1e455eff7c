"""Importers: other serial servers' configurations turned into ours (``nf import``)."""
