"""Thin handlers: validate, call crud (or enqueue), return a response model."""
