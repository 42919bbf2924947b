"""llama.cpp as rys runs it: the pinned build, llama-cpp-python in a child, llama.cpp's tools, the test model."""
