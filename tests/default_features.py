"""Feature indices of the bundled SAE that tests (and the README) rely on: change them here, and in
README.md's quickstart, whenever the bundled SAE is retrained."""

FRENCH = 5081
"""Fires on French text; at +2 the default model's reply opens in French ("Bonjour, ...")."""
