"""Command groups beyond the core ones: each module adds its commands to `agent.cli.app`.

Every module here is imported when the CLI starts, so keep heavy imports (torch,
kornia, langchain) inside the command functions.
"""
