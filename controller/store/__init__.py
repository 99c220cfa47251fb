"""The durable treatment history: the SQLite ledger, its format and queries, and the
rest-interval and clock-trust rules.

May import: :mod:`gunguard.core`, :mod:`gunguard.config`.
"""
