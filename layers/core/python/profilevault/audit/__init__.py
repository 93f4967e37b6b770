"""The tenant's hash-chained audit trail and its verification."""
