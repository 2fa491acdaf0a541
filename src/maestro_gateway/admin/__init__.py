"""The registry admin API (/admin/v1)."""
