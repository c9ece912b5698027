"""Learners that reach the RAM tasks only through the Gymnasium API."""
