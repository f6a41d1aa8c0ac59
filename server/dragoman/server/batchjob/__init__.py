"""Resumable batch translation and summarisation of article archives."""
