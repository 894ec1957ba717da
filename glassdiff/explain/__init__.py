"""Explaining a generation: trajectory strips, attention maps, the HTML report."""
