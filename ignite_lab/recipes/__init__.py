"""The built-in recipes, one self-contained module each; ``ignite-lab list`` lists them and
``python -m recipes.NAME`` runs one from a checkout."""
