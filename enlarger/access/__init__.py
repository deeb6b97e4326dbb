"""Access control: API tokens with roles (viewer < uploader < admin)."""
