"""The shared base: the one error type, atomic files, the GGUF gateway, architecture rules, a GGUF as layers."""
