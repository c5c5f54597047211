"""Pruning methods. Every module here registers its MethodSpec(s) on import (see registry._load_methods)."""
