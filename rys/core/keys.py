"""The metadata keys rys writes into the files it makes (all under "rys.").

Architecture keys ("{arch}.*") are in arch.py; standard keys come from
gguf-py's gguf.Keys table.
"""

PREFIX = "rys."
LAYER_PATH = PREFIX + "layer_path"  # source layer of every layer (indices of the original model)
SPEC = PREFIX + "spec"  # the SPEC string the file was built from
SOURCE_NAME = PREFIX + "source.name"  # file name of the original model
SOURCE_SIZE = PREFIX + "source.size"  # its size in bytes
VERSION = PREFIX + "version"  # the rys version that wrote the file
PAGE_PAD = PREFIX + "page_pad"  # spaces that put the output's tensor data page-congruent with the source's
