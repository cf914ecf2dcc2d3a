"""Masked copies: rules (what to do with each column), keyed transforms, PII detection,
and the COPY-stream filter that masks rows between the archive and the server."""
