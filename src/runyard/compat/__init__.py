"""Client surfaces of products that publish no Python SDK of their own, rebuilt as thin
layers over :mod:`runyard.sdk` (and nothing else of runyard's): code written against
such a product's documented API keeps its shape while it talks to runyard.

- :mod:`runyard.compat.datamaker`: DataMaker (scenarios).
- :mod:`runyard.compat.datagen`: DataGen (custom tools, their runs, secrets, ``execute_tool``;
  its published SDK has ``execute_tool`` alone).
- :mod:`runyard.compat.deeporigin`: not a surface but what DeepOrigin's published client
  needs from runyard's side: ``token_for(key)``, a runyard key in the JWT form it requires.
"""
