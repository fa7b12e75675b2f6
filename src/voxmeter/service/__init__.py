"""The service layer: small functions over the storage and limiter ports."""
