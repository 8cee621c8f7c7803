"""The cluster model: slim objects read from raw API data (objects.py, the only place that reads
metadata), per-service records (records.py), the store and its indexes (store.py), the one parse of a
question's name (names.py), the specification's name → answer rules (zone.py) and prebuilt wire
answers (answers.py).

May use: ``dnswire`` and data libraries. Knows no event loop, socket I/O, HTTP, API client or
metrics: it is fed events and asked questions.
"""
