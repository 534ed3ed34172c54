"""Helpers shared by the tests, imported as ``tests.support.<module>``; fixtures stay in
the ``conftest.py`` files, which import what they need from here.

- ``servers``: real runyard servers on loopback, scratch PostgreSQL databases, free ports
- ``api``: deploying tools and starting runs over HTTP, error codes, waiting for a status
- ``processes``: whether a process is alive
- ``waiting``: polling until a condition holds
- ``engine``: the engine tests' request factory type, a hand-written wheel
- ``sdk``: a fault-injecting HTTP proxy in front of a real server, small tool sources
- ``cli``: the CLI runner type and its JSON output
- ``synth``: the sample template and rendering a template to bytes
"""
