"""Text pipeline: language codes, sentence segmentation, HTML/Markdown structure, language detection.

Modules are imported explicitly (``dragoman.server.text.segment`` ...) so importing the package
costs nothing.
"""
