"""The command lines behind ``flows/*.py`` (also installed as console scripts)."""
