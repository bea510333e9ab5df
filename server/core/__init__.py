"""The protocol-neutral inference core: types, validation, batching, metrics, the service."""
