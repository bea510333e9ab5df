"""The REST door: a thin FastAPI facade over the inference core."""
