"""One module per recipe; ``python -m recipes.NAME`` runs it, ``ignite-lab list`` lists them."""
