"""Benchmarks of theme quality and sentiment against labelled public feedback (``feedback-themes bench``).

Nothing here runs in the product: it reads the data sets in ``../shared/data`` (see its README) or a CSV.
"""
