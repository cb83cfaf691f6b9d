"""The application version (one place; the OpenAPI document and the package read it)."""

VERSION = "0.1.0"
