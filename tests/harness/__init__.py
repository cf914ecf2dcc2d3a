"""Fixtures' machinery: throwaway PostgreSQL clusters and an S3-compatible server on loopback."""
