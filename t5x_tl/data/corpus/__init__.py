"""The built-in world and its documents: the seeded world, the sentence templates, the corpus and its files."""
