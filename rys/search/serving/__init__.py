"""Model servers: which one runs with which arguments, its life, its children reaped, its client."""
