"""Backbone implementations; importing this package registers them all."""
