"""Helpers shared by the test areas: real services, processes, signing, browsers."""
