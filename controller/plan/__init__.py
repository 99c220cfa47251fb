"""Treatment plans: a physiotherapist's prescription that gunguard checks, a guided
session that walks it through the supervisor, and the progression rules that act on
the person's pain scores (docs/plans.md).

Nothing here decides power: a session *asks* for each step's region with a ``Select``
intent, and the supervisor's admission and limits decide, as for any button.

May import: :mod:`gunguard.core`, :mod:`gunguard.config`, :mod:`gunguard.store`.
"""
