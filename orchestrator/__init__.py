"""orchestrator: dump production PostgreSQL once, archive it, restore it into its copies."""

__version__ = "0.1.0"
