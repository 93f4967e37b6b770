"""Landing files to sealed records: readers, mapping, the ingest flow, and the catalog the API shows."""
