"""Summarisers. ``extractive`` needs no model weights and works in any language.

Modules are imported explicitly so importing the package loads no numpy or model code.
"""
