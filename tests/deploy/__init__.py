"""Checks of deploy/: the manifests, the image recipe, the dashboard and the alerts an operator applies."""
