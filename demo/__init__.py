"""The functions behind the Gradio demo (``demo_app.py``): sample clips, controls generated from
the method registry, the Compare graph (a UI-format ComfyUI workflow run by the headless
runtime), charts and the workflow picture. Nothing here imports gradio, so all of it is
testable without a browser."""
