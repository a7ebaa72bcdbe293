"""The recipe kit: what recipes share to read data (datasets, text and vocabularies, a user's own inputs,
batch augmentation). Recipes import these modules, e.g. ``from ignite_lab.kit.text import Vocab``."""
