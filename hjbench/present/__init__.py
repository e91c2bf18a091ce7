"""Presenting results: summaries, tables, figures and the HTML report."""
