"""Declarations: what a run is (its config and a recipe's settings, each field declared once with its
checks), what a recipe is, how a run ends, and the errors a person can act on. Depends on nothing else here."""
