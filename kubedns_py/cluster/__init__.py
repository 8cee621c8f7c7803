"""The cluster model: slim objects (objects.py), per-service records (records.py), the store and its
indexes (store.py), the specification's name -> answer rules (zone.py) and prebuilt wire answers
(answers.py)."""
