"""Typed services: each trigger handler calls exactly one of these."""
