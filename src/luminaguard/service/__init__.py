"""`luminaguard serve`: the per-user local service (see ``web.py``)."""
