"""The exported kernels, one module per archive program, each a verbatim copy of the program's
source (``dispatch.json`` holds its provenance and sha256)."""
