"""Keys and sealing: AES-GCM and blind indexes, the tenant keyring (BYOK), sealing of documents."""
