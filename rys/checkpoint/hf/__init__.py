"""HF checkpoints and their GGUF counterparts: tensor layouts, names, mapping, folders."""
