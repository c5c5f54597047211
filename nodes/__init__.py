"""VideoPrune's ComfyUI node pack and the headless graph runtime that runs its workflows.

Kept light on purpose: ComfyUI imports this package through the root ``__init__.py`` under a
mangled name, so everything here uses relative imports and nothing heavy loads until used.
"""
