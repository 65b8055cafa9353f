"""Papers as content: each subpackage holds one paper's modifications, claims, families and
numbers.
"""
