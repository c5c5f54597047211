"""docs/METHODS.md is assembled from docs/methods/*.md and must not drift from them."""
import pathlib
import runpy


def test_methods_doc_is_up_to_date():
    root = pathlib.Path(__file__).resolve().parent.parent
    build = runpy.run_path(str(root / "docs" / "build_methods.py"))["build"]
    assert (root / "docs" / "METHODS.md").read_text() == build(), "run: python docs/build_methods.py"
