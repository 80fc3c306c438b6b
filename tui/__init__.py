"""tui: the anonsip terminal user interface (prompt_toolkit).

Talks to a node only through the node's control API.
"""

__all__: list[str] = []
