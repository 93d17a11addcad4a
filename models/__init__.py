"""Models: the catalogue of known models, where their files live, and GGUF checks."""
