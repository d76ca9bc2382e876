"""Views, one module per area; `checklist/urls.py` lists them in the same order."""
