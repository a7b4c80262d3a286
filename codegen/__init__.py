"""Code generation: from a scheduled symgrad program to a standalone kernel module.

Reads symgrad's IR and schedule only; knows nothing about SymPy.
"""
