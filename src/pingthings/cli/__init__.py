"""The ``pingthings`` command line."""
