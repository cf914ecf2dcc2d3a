"""Actions: each a function taking settings (and inputs) and returning a result record."""
