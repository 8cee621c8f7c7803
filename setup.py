"""The build: pyproject.toml holds the metadata; here the modules every UDP query passes through are
compiled with mypyc (from their own type annotations), which about halves the interpreter's share of
each answer. KUBEDNS_PY_PURE=1 installs them as plain Python, which behaves the same, slower."""

import os

from setuptools import setup

HOT_PATH = [
    "kubedns_py/memo.py",
    "kubedns_py/dnswire/reader.py",
    "kubedns_py/cluster/names.py",
    "kubedns_py/cluster/answers.py",
    "kubedns_py/net/stats.py",
    "kubedns_py/net/udp.py",
    "kubedns_py/net/inbox.py",
    "kubedns_py/net/udpthread.py",
    "kubedns_py/serve/answerer.py",
    "kubedns_py/cache/front/frontend.py",
    "kubedns_py/cache/store/entry.py",
]

if os.environ.get("KUBEDNS_PY_PURE"):
    setup()
else:
    from mypyc.build import mypycify

    setup(ext_modules=mypycify(HOT_PATH, opt_level="3"))
