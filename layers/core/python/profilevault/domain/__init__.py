"""What a source and its attributes are, and how values are validated and normalised."""
