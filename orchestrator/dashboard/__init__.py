"""The status page: history and catalog in, one self-contained HTML document out (pure)."""
