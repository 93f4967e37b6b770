"""Data-subject requests: access, portability, erasure, suppression."""
