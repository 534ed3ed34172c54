"""Dataset data: column types, parsing, coercion, Parquet parts and manifests, SQL.

Like ``engine/``, this package imports nothing else from runyard: its parsing and query
modules run inside the run sandbox (a child process that can read only the files it is
given), and the trusted services drive the rest.
"""
