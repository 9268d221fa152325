"""Helpers shared by the test suite: settings, a throwaway PostgreSQL, a live server."""
