"""ankigen: recall notes in, an Anki deck of exactly what you got wrong out."""

__version__ = "0.1.0"
