"""Test support: a tiny random-weight GGUF and helpers to run llama.cpp's llama-server on it."""
