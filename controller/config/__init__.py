"""The YAML config: schema (pydantic), ceiling checks, loading with located errors,
resolution into the core's plain limits, and the reload rules (tighter / looser).

May import: :mod:`gunguard.core`.
"""
